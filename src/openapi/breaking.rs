//! Breaking changes between a published document (`openapi/<version>.json`, what callers were
//! promised) and the one the mappings make now. Pure: two JSON documents in, findings out.
//!
//! What callers send must still be accepted: a parameter or body field removed (unknown ones
//! are refused), made required, or narrowed (a type, a value, a bound, a pattern) breaks them.
//! What callers receive must still be what they parse: a route, a status or a response field
//! removed, a field's type changed (or made nullable, or its date format changed) breaks
//! them. New values of a coded field are only risky: strict clients may not know them.
//! Additions are fine. Response bodies depend on what the database describes, so they are
//! compared only when the caller says the current document was built that way.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use crate::mapping::normalize_path;

/// How bad a change is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Callers that worked before fail now.
    Breaking,
    /// Strict callers may fail (a coded field has new values).
    Risky,
}

/// One change to a published operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// The published operation's `operationId`.
    pub operation_id: String,
    /// Upper-case method and the published path.
    pub method: String,
    pub path: String,
    pub level: Level,
    pub message: String,
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

/// The changes from `published` to `current`; `responses`: compare response bodies too.
pub fn changes(published: &Value, current: &Value, responses: bool) -> Vec<Change> {
    let mut now: HashMap<(&str, String), &Value> = HashMap::new();
    if let Some(paths) = current["paths"].as_object() {
        for (path, item) in paths {
            for m in METHODS {
                if let Some(op) = item.get(m) {
                    now.insert((m, normalize_path(path)), op);
                }
            }
        }
    }
    let mut out = Vec::new();
    let Some(paths) = published["paths"].as_object() else {
        return out;
    };
    for (path, item) in paths {
        for m in METHODS {
            let Some(old) = item.get(m) else { continue };
            let mut found = Found {
                docs: (published, current),
                operation_id: old["operationId"].as_str().unwrap_or("?").to_string(),
                method: m.to_ascii_uppercase(),
                path: path.clone(),
                out: &mut out,
            };
            match now.get(&(m, normalize_path(path))) {
                None => found.push(Level::Breaking, "the route is gone".to_string()),
                Some(new) => found.operation(old, new, responses),
            }
        }
    }
    out
}

/// The findings of one operation, with what they need to be reported.
struct Found<'a> {
    /// Published and current documents, for `$ref`s.
    docs: (&'a Value, &'a Value),
    operation_id: String,
    method: String,
    path: String,
    out: &'a mut Vec<Change>,
}

impl Found<'_> {
    fn push(&mut self, level: Level, message: String) {
        self.out.push(Change {
            operation_id: self.operation_id.clone(),
            method: self.method.clone(),
            path: self.path.clone(),
            level,
            message,
        });
    }

    fn operation(&mut self, old: &Value, new: &Value, responses: bool) {
        self.parameters(old, new);
        self.request_body(old, new);
        let (old_res, new_res) = (&old["responses"], &new["responses"]);
        for (status, old_r) in old_res.as_object().into_iter().flatten() {
            let Some(new_r) = new_res.get(status) else {
                self.push(
                    Level::Breaking,
                    format!("status {status} is no longer documented"),
                );
                continue;
            };
            if responses && status.starts_with('2') {
                let schema = |r: &Value, doc: &Value| {
                    resolve(doc, r)["content"]["application/json"]["schema"].clone()
                };
                let (o, n) = (schema(old_r, self.docs.0), schema(new_r, self.docs.1));
                if !o.is_null() && !n.is_null() {
                    self.response(&o, &n, &format!("response {status}"));
                }
            }
        }
    }

    fn parameters(&mut self, old: &Value, new: &Value) {
        let list = |op: &Value, doc: &Value| -> Vec<Value> {
            op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|p| resolve(doc, p).clone())
                .collect()
        };
        let (olds, news) = (list(old, self.docs.0), list(new, self.docs.1));
        let key = |p: &Value| {
            (
                p["name"].as_str().unwrap_or_default().to_string(),
                p["in"].as_str().unwrap_or_default().to_string(),
            )
        };
        for o in &olds {
            let (name, place) = key(o);
            let what = format!("parameter `{name}`");
            match news
                .iter()
                .find(|n| key(n) == (name.clone(), place.clone()))
            {
                // A path parameter's name is not the caller's business; the path matched.
                None if place == "path" => {}
                None => self.push(
                    Level::Breaking,
                    format!("{what} ({place}) was removed: callers that send it are refused"),
                ),
                Some(n) => {
                    if is_true(&n["required"]) && !is_true(&o["required"]) {
                        self.push(Level::Breaking, format!("{what} became required"));
                    }
                    self.request(&o["schema"], &n["schema"], &what);
                }
            }
        }
        for n in &news {
            let (name, place) = key(n);
            let known = olds.iter().any(|o| key(o) == (name.clone(), place.clone()));
            if !known && place != "path" && is_true(&n["required"]) {
                self.push(
                    Level::Breaking,
                    format!("new parameter `{name}` ({place}) is required"),
                );
            }
        }
    }

    fn request_body(&mut self, old: &Value, new: &Value) {
        let body = |op: &Value, doc: &Value| resolve(doc, &op["requestBody"]).clone();
        let (o, n) = (body(old, self.docs.0), body(new, self.docs.1));
        match (o.is_null(), n.is_null()) {
            (true, false) if is_true(&n["required"]) => {
                self.push(Level::Breaking, "a request body is now required".into());
            }
            (false, true) => {
                self.push(Level::Breaking, "the request body is gone".into());
            }
            (false, false) => {
                if is_true(&n["required"]) && !is_true(&o["required"]) {
                    self.push(Level::Breaking, "the request body became required".into());
                }
                let schema = |b: &Value| b["content"]["application/json"]["schema"].clone();
                let (os, ns) = (schema(&o), schema(&n));
                if !os.is_null() && !ns.is_null() {
                    self.request(&os, &ns, "the body");
                }
            }
            _ => {}
        }
    }

    /// What a caller sends: everything `old` accepted, `new` must accept.
    fn request(&mut self, old: &Value, new: &Value, what: &str) {
        let (o, n) = (resolve(self.docs.0, old), resolve(self.docs.1, new));
        match (types(self.docs.0, o), types(self.docs.1, n)) {
            (_, None) => {}
            (None, Some(nt)) => self.push(
                Level::Breaking,
                format!("{what} narrowed from any value to {}", names(&nt)),
            ),
            (Some(ot), Some(nt)) => {
                if ot.iter().any(|t| !covers(&nt, t)) {
                    self.push(
                        Level::Breaking,
                        format!(
                            "type of {what} narrowed from {} to {}",
                            names(&ot),
                            names(&nt)
                        ),
                    );
                }
            }
        }
        if let Some(new_values) = n["enum"].as_array() {
            match o["enum"].as_array() {
                None => self.push(
                    Level::Breaking,
                    format!("{what} now accepts only {}", values(new_values)),
                ),
                Some(old_values) => {
                    let gone: Vec<Value> = old_values
                        .iter()
                        .filter(|v| !new_values.contains(v))
                        .cloned()
                        .collect();
                    if !gone.is_empty() {
                        self.push(
                            Level::Breaking,
                            format!("{what} no longer accepts {}", values(&gone)),
                        );
                    }
                }
            }
        }
        for (key, lower_is_narrower) in [
            ("minimum", false),
            ("exclusiveMinimum", false),
            ("minLength", false),
            ("minItems", false),
            ("maximum", true),
            ("exclusiveMaximum", true),
            ("maxLength", true),
            ("maxItems", true),
        ] {
            let (ov, nv) = (o[key].as_f64(), n[key].as_f64());
            let narrowed = match (ov, nv) {
                (None, Some(_)) => true,
                (Some(a), Some(b)) if lower_is_narrower => b < a,
                (Some(a), Some(b)) => b > a,
                _ => false,
            };
            if narrowed {
                self.push(
                    Level::Breaking,
                    format!(
                        "{what}: `{key}` narrowed from {} to {}",
                        o[key]
                            .as_f64()
                            .map_or("none".into(), |v| n_text(&o[key], v)),
                        n_text(&n[key], nv.unwrap_or_default())
                    ),
                );
            }
        }
        // A wider integer accepts every narrower one (`int32` → `int64`, or none).
        let widened_integer = matches!(
            (o["format"].as_str(), n["format"].as_str()),
            (Some("int32"), Some("int64"))
        );
        for key in ["pattern", "format"] {
            if key == "format" && widened_integer {
                continue;
            }
            if !n[key].is_null() && n[key] != o[key] {
                self.push(
                    Level::Breaking,
                    format!(
                        "{what}: `{key}` changed from {} to {}",
                        text_or_none(&o[key]),
                        text_or_none(&n[key])
                    ),
                );
            }
        }
        if let (Some(op), Some(np)) = (o["properties"].as_object(), n["properties"].as_object()) {
            let required = |s: &Value| -> BTreeSet<String> {
                s["required"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            };
            let (or, nr) = (required(o), required(n));
            for field in nr.difference(&or) {
                self.push(
                    Level::Breaking,
                    format!("{} became required", field_of(what, field)),
                );
            }
            let closed = n["additionalProperties"] == Value::Bool(false);
            for (field, os) in op {
                match np.get(field) {
                    None if closed => self.push(
                        Level::Breaking,
                        format!("{} is no longer accepted", field_of(what, field)),
                    ),
                    None => {}
                    Some(ns) => self.request(os, ns, &field_of(what, field)),
                }
            }
        }
        if !o["items"].is_null() && !n["items"].is_null() {
            self.request(&o["items"], &n["items"], &format!("an item of {what}"));
        }
    }

    /// What a caller receives: everything `new` sends, `old` must have promised.
    fn response(&mut self, old: &Value, new: &Value, what: &str) {
        let (o, n) = (resolve(self.docs.0, old), resolve(self.docs.1, new));
        let mut retyped = false;
        match (types(self.docs.0, o), types(self.docs.1, n)) {
            (None, _) => {}
            (Some(ot), None) => {
                retyped = true;
                self.push(
                    Level::Breaking,
                    format!("type of {what} widened from {} to any value", names(&ot)),
                );
            }
            (Some(ot), Some(nt)) => {
                let added: Vec<&String> = nt.iter().filter(|t| !covers(&ot, t)).collect();
                if added.len() == 1 && added[0] == "null" {
                    self.push(Level::Breaking, format!("{what} may now be null"));
                } else if !added.is_empty() {
                    retyped = true;
                    self.push(
                        Level::Breaking,
                        format!(
                            "type of {what} changed from {} to {}",
                            names(&ot),
                            names(&nt)
                        ),
                    );
                }
            }
        }
        if let Some(old_values) = o["enum"].as_array() {
            match n["enum"].as_array() {
                None => self.push(
                    Level::Risky,
                    format!("{what} is no longer limited to {}", values(old_values)),
                ),
                Some(new_values) => {
                    let added: Vec<Value> = new_values
                        .iter()
                        .filter(|v| !old_values.contains(v))
                        .cloned()
                        .collect();
                    if !added.is_empty() {
                        self.push(
                            Level::Risky,
                            format!("{what} has new values: {}", values(&added)),
                        );
                    }
                }
            }
        }
        if !retyped && !o["format"].is_null() && n["format"] != o["format"] {
            self.push(
                Level::Breaking,
                format!(
                    "{what}: `format` changed from {} to {}",
                    text_or_none(&o["format"]),
                    text_or_none(&n["format"])
                ),
            );
        }
        if let (Some(op), Some(np)) = (o["properties"].as_object(), n["properties"].as_object()) {
            for (field, os) in op {
                match np.get(field) {
                    None => self.push(
                        Level::Breaking,
                        format!("{} was removed", field_of(what, field)),
                    ),
                    Some(ns) => self.response(os, ns, &field_of(what, field)),
                }
            }
        }
        if !o["items"].is_null() && !n["items"].is_null() {
            self.response(&o["items"], &n["items"], &format!("an item of {what}"));
        }
    }
}

/// `field `due_on` of the body`, or of a nested place.
fn field_of(what: &str, field: &str) -> String {
    match what.strip_prefix("field `").and_then(|w| w.split_once('`')) {
        Some((parent, rest)) => format!("field `{parent}.{field}`{rest}"),
        None => format!("field `{field}` of {what}"),
    }
}

fn is_true(v: &Value) -> bool {
    v.as_bool() == Some(true)
}

/// Follow `#/components/...` references within `doc`.
fn resolve<'a>(doc: &'a Value, mut v: &'a Value) -> &'a Value {
    for _ in 0..16 {
        let Some(r) = v["$ref"].as_str() else {
            return v;
        };
        let Some(pointer) = r.strip_prefix('#') else {
            return v;
        };
        match doc.pointer(pointer) {
            Some(target) => v = target,
            None => return v,
        }
    }
    v
}

/// The JSON types a schema allows; `None` for any value. `oneOf`/`anyOf` allow the union of
/// their branches.
fn types(doc: &Value, s: &Value) -> Option<BTreeSet<String>> {
    let s = resolve(doc, s);
    match &s["type"] {
        Value::String(t) => return Some(BTreeSet::from([t.clone()])),
        Value::Array(ts) => {
            return Some(
                ts.iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect(),
            );
        }
        _ => {}
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(branches) = s[key].as_array() {
            let mut all = BTreeSet::new();
            for b in branches {
                all.extend(types(doc, b)?);
            }
            return Some(all);
        }
    }
    None
}

/// An integer is a number.
fn covers(set: &BTreeSet<String>, t: &str) -> bool {
    set.contains(t) || (t == "integer" && set.contains("number"))
}

fn names(set: &BTreeSet<String>) -> String {
    set.iter().cloned().collect::<Vec<_>>().join(" or ")
}

fn values(vs: &[Value]) -> String {
    vs.iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn text_or_none(v: &Value) -> String {
    if v.is_null() {
        "none".into()
    } else {
        v.to_string()
    }
}

fn n_text(v: &Value, f: f64) -> String {
    if v.is_i64() || v.is_u64() {
        v.to_string()
    } else {
        f.to_string()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn doc(op: &Value, schema: &Value) -> Value {
        json!({
            "openapi": "3.1.0",
            "paths": { "/v1/jobs/{job_number}": { "get": op } },
            "components": { "schemas": { "GetJob": schema } }
        })
    }

    fn op(params: &Value, statuses: &[&str]) -> Value {
        let mut responses = serde_json::Map::new();
        for s in statuses {
            responses.insert(
                (*s).to_string(),
                json!({ "description": "x", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/GetJob" } } } }),
            );
        }
        json!({ "operationId": "getJob", "parameters": params, "responses": responses })
    }

    fn row() -> Value {
        json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {
                "job_number": { "type": "integer" },
                "status": { "type": "string", "enum": ["planned", "released"] },
                "due_on": { "type": ["string", "null"], "format": "date" },
                "unit_price": { "type": "number" }
            }
        })
    }

    fn param(name: &str, required: bool, schema: &Value) -> Value {
        json!({ "name": name, "in": "query", "required": required, "schema": schema })
    }

    fn messages(old: &Value, new: &Value) -> Vec<String> {
        changes(old, new, true)
            .into_iter()
            .map(|c| c.message)
            .collect()
    }

    fn base_params() -> Value {
        json!([
            { "name": "job_number", "in": "path", "required": true, "schema": { "type": "integer", "minimum": 1 } },
            param("plant", false, &json!({ "type": "string", "maxLength": 3 }))
        ])
    }

    #[test]
    fn the_same_document_has_no_changes() {
        let d = doc(&op(&base_params(), &["200", "404"]), &row());
        assert!(changes(&d, &d, true).is_empty());
    }

    #[test]
    fn additions_are_fine() {
        let old = doc(&op(&base_params(), &["200"]), &row());
        let mut params = base_params();
        params.as_array_mut().expect("array").push(param(
            "rush",
            false,
            &json!({ "type": "boolean" }),
        ));
        let mut r = row();
        r["properties"]["customer_name"] = json!({ "type": "string" });
        r["properties"]["status"]["enum"] = json!(["planned", "released"]);
        let mut new = doc(&op(&params, &["200", "404"]), &r);
        new["paths"]["/v1/other"] = json!({ "get": op(&json!([]), &["200"]) });
        // A wider parameter is fine, and so is a renamed path parameter.
        new["paths"]["/v1/jobs/{job}"] = new["paths"]["/v1/jobs/{job_number}"].take();
        new["paths"]
            .as_object_mut()
            .expect("paths")
            .remove("/v1/jobs/{job_number}");
        new["paths"]["/v1/jobs/{job}"]["get"]["parameters"][1]["schema"]["maxLength"] = json!(10);
        assert_eq!(messages(&old, &new), Vec::<String>::new());
    }

    #[test]
    fn a_removed_route_or_status_breaks() {
        let old = doc(&op(&base_params(), &["200", "404"]), &row());
        let gone = json!({ "openapi": "3.1.0", "paths": {} });
        assert_eq!(messages(&old, &gone), ["the route is gone"]);
        let fewer = doc(&op(&base_params(), &["200"]), &row());
        assert_eq!(
            messages(&old, &fewer),
            ["status 404 is no longer documented"]
        );
        let moved = json!({ "paths": { "/v1/job/{job_number}": { "get": op(&base_params(), &["200", "404"]) } } });
        let c = changes(&old, &moved, true);
        assert_eq!(c.len(), 1);
        assert_eq!(
            (c[0].operation_id.as_str(), c[0].method.as_str()),
            ("getJob", "GET")
        );
    }

    #[test]
    fn response_fields_removed_or_changed_break() {
        let old = doc(&op(&base_params(), &["200"]), &row());
        let mut r = row();
        r["properties"]
            .as_object_mut()
            .expect("props")
            .remove("due_on");
        r["properties"]["unit_price"] = json!({ "type": "string" });
        r["properties"]["job_number"] = json!({ "type": ["integer", "null"] });
        r["properties"]["status"]["enum"] = json!(["planned", "released", "on_hold"]);
        let new = doc(&op(&base_params(), &["200"]), &r);
        let c = changes(&old, &new, true);
        let m: Vec<&str> = c.iter().map(|c| c.message.as_str()).collect();
        assert!(
            m.contains(&"field `due_on` of response 200 was removed"),
            "{m:?}"
        );
        assert!(
            m.contains(&"type of field `unit_price` of response 200 changed from number to string"),
            "{m:?}"
        );
        assert!(
            m.contains(&"field `job_number` of response 200 may now be null"),
            "{m:?}"
        );
        let risky: Vec<&Change> = c.iter().filter(|c| c.level == Level::Risky).collect();
        assert_eq!(risky.len(), 1);
        assert!(risky[0].message.contains("\"on_hold\""));
        // Without response comparison (no database description), only the contract of the
        // request and the statuses is judged.
        assert!(changes(&old, &new, false).is_empty());
    }

    #[test]
    fn a_format_change_breaks_a_response() {
        let old = doc(&op(&base_params(), &["200"]), &row());
        let mut r = row();
        r["properties"]["due_on"]["format"] = json!("date-time");
        let new = doc(&op(&base_params(), &["200"]), &r);
        assert_eq!(
            messages(&old, &new),
            ["field `due_on` of response 200: `format` changed from \"date\" to \"date-time\""]
        );
    }

    #[test]
    fn parameters_made_required_removed_or_narrowed_break() {
        let old = doc(&op(&base_params(), &["200"]), &row());
        let required = doc(
            &op(
                &json!([
                    base_params()[0],
                    param("plant", true, &json!({ "type": "string", "maxLength": 3 }))
                ]),
                &["200"],
            ),
            &row(),
        );
        assert_eq!(
            messages(&old, &required),
            ["parameter `plant` became required"]
        );
        let removed = doc(&op(&json!([base_params()[0]]), &["200"]), &row());
        assert_eq!(
            messages(&old, &removed),
            ["parameter `plant` (query) was removed: callers that send it are refused"]
        );
        let new_required = {
            let mut p = base_params();
            p.as_array_mut().expect("array").push(param(
                "since",
                true,
                &json!({ "type": "string" }),
            ));
            doc(&op(&p, &["200"]), &row())
        };
        assert_eq!(
            messages(&old, &new_required),
            ["new parameter `since` (query) is required"]
        );
        let narrowed = {
            let mut p = base_params();
            p[0]["schema"] = json!({ "type": "integer", "minimum": 100 });
            p[1]["schema"] = json!({ "type": "string", "maxLength": 2, "enum": ["CL", "DT"] });
            doc(&op(&p, &["200"]), &row())
        };
        let m = messages(&old, &narrowed);
        assert_eq!(
            m,
            [
                "parameter `job_number`: `minimum` narrowed from 1 to 100",
                "parameter `plant` now accepts only \"CL\", \"DT\"",
                "parameter `plant`: `maxLength` narrowed from 3 to 2",
            ]
        );
        let wider = {
            let mut p = base_params();
            p[0]["schema"] = json!({ "type": "integer", "format": "int64" });
            doc(&op(&p, &["200"]), &row())
        };
        let int32 = {
            let mut p = base_params();
            p[0]["schema"] = json!({ "type": "integer", "format": "int32", "minimum": 1 });
            doc(&op(&p, &["200"]), &row())
        };
        assert!(messages(&int32, &wider).is_empty(), "int32 → int64 widens");
        assert_eq!(
            messages(&wider, &int32),
            [
                "parameter `job_number`: `minimum` narrowed from none to 1",
                "parameter `job_number`: `format` changed from \"int64\" to \"int32\""
            ]
        );
        let retyped = {
            let mut p = base_params();
            p[1]["schema"] = json!({ "type": "integer" });
            doc(&op(&p, &["200"]), &row())
        };
        assert_eq!(
            messages(&old, &retyped),
            ["type of parameter `plant` narrowed from string to integer"]
        );
    }

    #[test]
    fn request_bodies_fields_required_or_gone_break() {
        let body = |schema: Value| {
            json!({
                "paths": { "/v1/notes": { "post": {
                    "operationId": "addNote",
                    "requestBody": { "required": true, "content": { "application/json": { "schema": schema } } },
                    "responses": { "201": { "description": "x" } }
                } } }
            })
        };
        let old = body(json!({
            "type": "object", "additionalProperties": false, "required": ["text"],
            "properties": { "text": { "type": "string" }, "author": { "type": "string" } }
        }));
        let new = body(json!({
            "type": "object", "additionalProperties": false, "required": ["text", "author"],
            "properties": { "text": { "type": "string", "maxLength": 200 }, "author": { "type": "string" } }
        }));
        assert_eq!(
            messages(&old, &new),
            [
                "field `author` of the body became required",
                "field `text` of the body: `maxLength` narrowed from none to 200",
            ]
        );
        let gone = body(json!({
            "type": "object", "additionalProperties": false, "required": ["text"],
            "properties": { "text": { "type": "string" } }
        }));
        assert_eq!(
            messages(&old, &gone),
            ["field `author` of the body is no longer accepted"]
        );
    }
}
