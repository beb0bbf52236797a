//! A write's JSON body → values to bind, checked against the route's body fields with the same
//! codecs parameters use (an ISO date becomes CYYMMDD, a word its code letter, a decimal keeps
//! every digit). Every mistake is collected with a JSON pointer to its field; nothing is bound
//! unless there is none. Pure; no IO.

use indexmap::IndexMap;
use serde_json::value::RawValue;

use super::problem::FieldError;
use crate::catalog::{BodyPlan, FieldPlan, FieldType};
use crate::codec::BindValue;

/// A body field's value.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    One(BindValue),
    /// Per element of a list, its item fields' values.
    List(Vec<Vec<BindValue>>),
}

/// One object of the body (a bulk body has several): per body field, its value.
pub type Object = Vec<FieldValue>;

type RawObject<'a> = IndexMap<String, &'a RawValue>;

/// Read and check `bytes`: one object, or for a bulk route an array of them.
pub fn parse(plan: &BodyPlan, bytes: &[u8]) -> Result<Vec<Object>, Vec<FieldError>> {
    let text = std::str::from_utf8(bytes).map_err(|_| vec![whole("is not UTF-8 text")])?;
    let root: &RawValue = serde_json::from_str(text).map_err(|e| {
        vec![whole(&format!(
            "is not valid JSON (line {}, column {})",
            e.line(),
            e.column()
        ))]
    })?;
    let mut errors = Vec::new();
    let objects = match plan.bulk {
        Some(max) => {
            let Ok(items) = serde_json::from_str::<Vec<&RawValue>>(root.get()) else {
                return Err(vec![whole("must be a JSON array of objects")]);
            };
            if items.is_empty() || items.len() > max {
                return Err(vec![whole(&format!(
                    "must hold between 1 and {max} objects (it holds {})",
                    items.len()
                ))]);
            }
            items
                .iter()
                .enumerate()
                .map(|(i, item)| object(&plan.fields, item, &format!("/{i}"), &mut errors))
                .collect()
        }
        None => vec![object(&plan.fields, root, "", &mut errors)],
    };
    if errors.is_empty() {
        Ok(objects)
    } else {
        Err(errors)
    }
}

fn whole(detail: &str) -> FieldError {
    FieldError {
        name: String::new(),
        location: "body",
        detail: detail.to_string(),
        pointer: Some(String::new()),
    }
}

fn error(name: &str, pointer: String, detail: String) -> FieldError {
    FieldError {
        name: name.to_string(),
        location: "body",
        detail,
        pointer: Some(pointer),
    }
}

/// Escape a key for a JSON pointer (RFC 6901).
fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Check one object against `fields`; its mistakes go to `errors`.
fn object(fields: &[FieldPlan], raw: &RawValue, at: &str, errors: &mut Vec<FieldError>) -> Object {
    let Ok(map) = serde_json::from_str::<RawObject<'_>>(raw.get()) else {
        errors.push(error("", at.to_string(), "must be a JSON object".into()));
        return Vec::new();
    };
    for key in map.keys() {
        if !fields.iter().any(|f| f.name == *key) {
            let known: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
            errors.push(error(
                key,
                format!("{at}/{}", escape(key)),
                format!(
                    "is not a field of this body (its fields: {})",
                    known.join(", ")
                ),
            ));
        }
    }
    fields
        .iter()
        .map(|f| {
            field(
                f,
                map.get(&f.name).copied(),
                &format!("{at}/{}", escape(&f.name)),
                errors,
            )
        })
        .collect()
}

fn field(
    f: &FieldPlan,
    raw: Option<&RawValue>,
    at: &str,
    errors: &mut Vec<FieldError>,
) -> FieldValue {
    let absent = |errors: &mut Vec<FieldError>| {
        if f.required {
            errors.push(error(&f.name, at.to_string(), "is required".into()));
        }
    };
    match &f.ty {
        FieldType::Value(ty) => {
            let null = BindValue::Null(ty.null_kind());
            match raw.map(RawValue::get) {
                None => {
                    absent(errors);
                    FieldValue::One(f.default.clone().unwrap_or(null))
                }
                Some("null") if f.nullable => FieldValue::One(null),
                Some("null") => {
                    errors.push(error(&f.name, at.to_string(), "must not be null".into()));
                    FieldValue::One(null)
                }
                Some(text) => match ty.parse_json(text) {
                    Ok(v) => FieldValue::One(v),
                    Err(detail) => {
                        errors.push(error(&f.name, at.to_string(), detail));
                        FieldValue::One(null)
                    }
                },
            }
        }
        FieldType::List {
            items,
            min_items,
            max_items,
        } => {
            let Some(raw) = raw.filter(|r| r.get() != "null") else {
                absent(errors);
                return FieldValue::List(Vec::new());
            };
            let Ok(elements) = serde_json::from_str::<Vec<&RawValue>>(raw.get()) else {
                errors.push(error(
                    &f.name,
                    at.to_string(),
                    "must be a list of objects".into(),
                ));
                return FieldValue::List(Vec::new());
            };
            if elements.len() < *min_items || elements.len() > *max_items {
                errors.push(error(
                    &f.name,
                    at.to_string(),
                    format!(
                        "must hold between {min_items} and {max_items} elements (it holds {})",
                        elements.len()
                    ),
                ));
            }
            FieldValue::List(
                elements
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        object(items, e, &format!("{at}/{i}"), errors)
                            .into_iter()
                            .map(|v| match v {
                                FieldValue::One(b) => b,
                                FieldValue::List(_) => {
                                    BindValue::Null(crate::codec::BindKind::Text)
                                }
                            })
                            .collect()
                    })
                    .collect(),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::testing::{compile_text, sources};

    fn plan(fields: &str, bulk: &str) -> BodyPlan {
        let text = format!(
            "source = \"pg\"\n[[route]]\nid = \"w\"\nmethod = \"POST\"\npath = \"/orders\"\nscopes = [\"x\"]\n{bulk}\n{fields}\n\
             [[route.step]]\nsql = \"INSERT INTO O VALUES (:customer, :due, :qty, :status, :email)\"\n\
             [[route.step]]\nfor_each = \"lines\"\nindex_as = \"line_no\"\nsql = \"INSERT INTO L VALUES (:line_no, :item, :quantity)\"\n"
        );
        let c = compile_text("f.toml", &text, &sources()).unwrap_or_else(|e| panic!("{e:?}"));
        c.routes[0]
            .write
            .as_ref()
            .and_then(|w| w.body.clone())
            .expect("body")
    }

    const FIELDS: &str = r#"body.customer = { type = "integer", minimum = 1 }
body.due = { type = "date", format = "cyymmdd", nullable = true }
body.qty = { type = "decimal", precision = 11, scale = 3 }
body.status = { codes = { P = "planned", R = "released" }, default = "planned" }
body.email = { type = "string", format = "email", max_length = 40, required = false }
body.lines = { type = "list", max_items = 3, items.item = { type = "string", max_length = 6, pad = true }, items.quantity = { type = "decimal", precision = 7, scale = 2 } }
"#;

    #[test]
    fn a_good_body_is_encoded_to_the_legacy_form() {
        let p = plan(FIELDS, "");
        let body = br#"{"customer": 1001, "due": "2025-03-04", "qty": 12.5, "lines": [{"item": "BOLT", "quantity": "3.25"}]}"#;
        let objects = parse(&p, body).expect("valid");
        assert_eq!(objects.len(), 1);
        let o = &objects[0];
        assert_eq!(o[0], FieldValue::One(BindValue::Int(1001)));
        assert_eq!(o[1], FieldValue::One(BindValue::Int(1_250_304)));
        assert_eq!(o[2], FieldValue::One(BindValue::Text("12.5".into())));
        assert_eq!(o[3], FieldValue::One(BindValue::Text("P".into())));
        assert_eq!(
            o[4],
            FieldValue::One(BindValue::Null(crate::codec::BindKind::Text))
        );
        assert_eq!(
            o[5],
            FieldValue::List(vec![vec![
                BindValue::Text("BOLT  ".into()),
                BindValue::Text("3.25".into())
            ]])
        );
    }

    #[test]
    fn five_mistakes_are_named_at_once() {
        let p = plan(FIELDS, "");
        let body = br#"{"customer": "1001", "due": "03/04/2025", "qty": 1.0001, "colour": "red",
                        "lines": [{"item": "WASHER-XL", "quantity": 1}]}"#;
        let errors = parse(&p, body).expect_err("invalid");
        let pointers: Vec<&str> = errors.iter().filter_map(|e| e.pointer.as_deref()).collect();
        assert_eq!(
            pointers,
            ["/colour", "/customer", "/due", "/qty", "/lines/0/item"],
            "{errors:#?}"
        );
        assert!(errors[3].detail.contains("3 decimal places"), "{errors:#?}");
    }

    #[test]
    fn missing_null_and_shape() {
        let p = plan(FIELDS, "");
        let errors = parse(&p, br#"{"due": null, "qty": null}"#).expect_err("invalid");
        let got: Vec<(&str, &str)> = errors
            .iter()
            .map(|e| (e.pointer.as_deref().unwrap_or(""), e.detail.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("/customer", "is required"),
                ("/qty", "must not be null"),
                ("/lines", "is required")
            ]
        );
        assert_eq!(
            parse(&p, b"[1]").expect_err("array")[0].detail,
            "must be a JSON object"
        );
        assert!(
            parse(&p, b"{").expect_err("broken")[0]
                .detail
                .starts_with("is not valid JSON")
        );
        assert!(parse(&p, b"\xff").is_err());
    }

    #[test]
    fn bulk_bodies_name_the_row() {
        let p = plan(FIELDS, "bulk = { max = 2 }");
        let one = r#"{"customer": 1, "due": null, "qty": 1, "lines": []}"#;
        let bad = r#"{"customer": 0, "due": null, "qty": 1, "lines": []}"#;
        assert_eq!(
            parse(&p, format!("[{one},{one}]").as_bytes())
                .expect("ok")
                .len(),
            2
        );
        let errors = parse(&p, format!("[{one},{bad}]").as_bytes()).expect_err("row 1");
        assert_eq!(errors[0].pointer.as_deref(), Some("/1/customer"));
        assert!(parse(&p, format!("[{one},{one},{one}]").as_bytes()).is_err());
        assert!(parse(&p, b"[]").is_err());
        assert!(parse(&p, one.as_bytes()).is_err());
    }
}
