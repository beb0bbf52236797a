//! The OpenAPI 3.1 document of each API version, built from the compiled catalog (the same
//! plans the server runs, so the document cannot drift from what is served), and the Swagger
//! UI configuration that lists them. What the databases said of a route ([`Learned`]) completes
//! what its mapping leaves open (untyped or unnamed columns, parameter ranges), so row schemas
//! can be closed. Pure: no IO. (A little over 600 lines: the schema of every codec and
//! parameter type is one match each, which reads best whole.)

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::json;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{
    AdditionalProperties, ArrayBuilder, KnownFormat, ObjectBuilder, OneOfBuilder, Schema,
    SchemaFormat, SchemaType, Type,
};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, Deprecated, HeaderBuilder, InfoBuilder, OpenApi,
    OpenApiBuilder, PathItem, PathsBuilder, Ref, RefOr, Required,
};

pub mod breaking;
mod listing;
mod queued;

use crate::catalog::{Catalog, ParamLocation, ParamPlan, RoutePlan};
use crate::codec::{
    BindValue, ColumnType, DateFormat, LikeAt, OnInvalid, ParamType, TimeFormat, UnknownCode,
};
use crate::config::DocsInfo;
use crate::shape::{Described, IntRange, Learned};

/// Every version's document, rendered to JSON once.
#[derive(Debug, Default)]
pub struct Documents {
    /// version → pretty-printed JSON (with a final newline), in version order.
    pub rendered: BTreeMap<String, String>,
}

impl Documents {
    /// Every version's document, with what the databases said of the routes so far (result
    /// columns the mapping leaves open, parameter ranges).
    pub fn build(catalog: &Catalog, learned: &Learned, info: &DocsInfo) -> Self {
        let rendered = catalog
            .versions()
            .into_iter()
            .map(|v| {
                let doc = document(catalog, learned, &v, info);
                let mut text = doc.to_pretty_json().unwrap_or_else(|_| "{}".to_string());
                text.push('\n');
                (v, text)
            })
            .collect();
        Self { rendered }
    }
}

const PROBLEM_SCHEMA: &str = "Problem";

/// The OpenAPI document for one version.
pub fn document(catalog: &Catalog, learned: &Learned, version: &str, info: &DocsInfo) -> OpenApi {
    let routes: Vec<(&RoutePlan, Option<&Described>)> = catalog
        .routes
        .iter()
        .enumerate()
        .filter(|(_, r)| r.version == version)
        .map(|(i, r)| (r.as_ref(), learned.get(i).map(AsRef::as_ref)))
        .collect();
    let mut components = ComponentsBuilder::new().schema(PROBLEM_SCHEMA, problem_schema());
    if info.bearer {
        components = components.security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some("A JWT whose `scope` claim lists the caller's scopes."))
                    .build(),
            ),
        );
    }
    if info.api_keys {
        components = components.security_scheme(
            API_KEY,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-API-Key",
                "A key from `patina keys new`; its scopes are set when it is made.",
            ))),
        );
    }
    let mut paths: BTreeMap<&str, Vec<(&RoutePlan, Option<&Described>)>> = BTreeMap::new();
    for (r, shape) in &routes {
        paths.entry(r.path.as_str()).or_default().push((r, *shape));
    }
    let mut path_builder = PathsBuilder::new();
    for (path, rs) in paths {
        let mut item: Option<PathItem> = None;
        for (r, shape) in rs {
            let (op, row_name, row_schema) = operation(r, shape, info);
            components = components.schema(row_name, row_schema);
            let method = match r.method.as_str() {
                "POST" => HttpMethod::Post,
                "PUT" => HttpMethod::Put,
                "PATCH" => HttpMethod::Patch,
                "DELETE" => HttpMethod::Delete,
                _ => HttpMethod::Get,
            };
            match &mut item {
                None => item = Some(PathItem::new(method, op)),
                Some(i) => i.merge_operations(PathItem::new(method, op)),
            }
        }
        if let Some(item) = item {
            path_builder = path_builder.path(path, item);
        }
    }
    if routes
        .iter()
        .any(|(r, _)| r.write.as_ref().is_some_and(|w| w.queue.is_some()))
    {
        let (path, item, name, schema) = queued::deliveries(version, info);
        path_builder = path_builder.path(path, item);
        components = components.schema(name, schema);
    }
    let mut tags: Vec<&str> = routes
        .iter()
        .flat_map(|(r, _)| r.tags.iter().map(String::as_str))
        .collect();
    tags.sort_unstable();
    tags.dedup();
    let title = info
        .title
        .clone()
        .unwrap_or_else(|| "Patina API".to_string());
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title(format!("{title} ({version})"))
                .version(version)
                .description(Some(info.description.clone().unwrap_or_else(|| {
                    "Generated from the mapping files by Patina. Errors are \
                     application/problem+json (RFC 9457)."
                        .to_string()
                }))),
        )
        .paths(path_builder)
        .components(Some(components.build()))
        .tags(Some(
            tags.into_iter().map(|t| TagBuilder::new().name(t).build()),
        ))
        .build()
}

fn upper_first(s: &str) -> String {
    let mut c = s.chars();
    c.next()
        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
        .unwrap_or_default()
}

const BEARER: &str = "bearerAuth";
const API_KEY: &str = "apiKeyAuth";

fn operation(
    r: &RoutePlan,
    shape: Option<&Described>,
    info: &DocsInfo,
) -> (utoipa::openapi::path::Operation, String, Schema) {
    let row_name = upper_first(&r.id);
    let row_ref = RefOr::Ref(Ref::from_schema_name(&row_name));
    let bulk = r
        .write
        .as_ref()
        .and_then(|w| w.body.as_ref())
        .and_then(|b| b.bulk);
    let body: RefOr<Schema> = if r.one || (r.write.is_some() && bulk.is_none()) {
        row_ref
    } else if r.write.is_some() {
        ObjectBuilder::new()
            .property("data", ArrayBuilder::new().items(row_ref))
            .required("data")
            .into()
    } else {
        let most = r.list.page.as_ref().map_or(r.max_rows, |p| p.max);
        let mut envelope = ObjectBuilder::new()
            .property(
                "data",
                ArrayBuilder::new()
                    .items(row_ref.clone())
                    .max_items(Some(most))
                    .description(Some(match &r.list.page {
                        Some(p) => format!("One page: {} rows unless `limit` says otherwise (at most {}).", p.size, p.max),
                        None => format!("At most {most} rows."),
                    })),
            )
            .property(
                "next",
                ObjectBuilder::new()
                    .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
                    .description(Some(if r.list.page.is_some() {
                        "Cursor of the next page (pass it as `cursor`, with the same parameters and sort); null on the last page."
                    } else {
                        "Always null: this list is one page (`truncated` says when it was cut at its row cap)."
                    })),
            );
        if r.list.page.is_none() {
            envelope = envelope.property(
                "truncated",
                ObjectBuilder::new()
                    .schema_type(SchemaType::from(Type::Boolean))
                    .description(Some(format!(
                        "Present (true) only when the list holds more than {most} rows and \
                         was cut there."
                    ))),
            );
        }
        if r.list.count.is_some() {
            envelope = envelope.property("total", listing::total_schema());
        }
        envelope
            .required("data")
            .required("next")
            .additional_properties(Some(AdditionalProperties::FreeForm(false)))
            .into()
    };
    let request_id = HeaderBuilder::new()
        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
        .description(Some("The request id, echoed or generated."))
        .build();
    let written = body.clone();
    let mut ok = ResponseBuilder::new()
        .description(if r.one { "The row." } else { "The rows." })
        .content(
            "application/json",
            ContentBuilder::new().schema(Some(body)).build(),
        )
        .header("X-Request-Id", request_id);
    if r.write.is_none() && !r.one {
        ok = listing::list_response(r, ok, RefOr::Ref(Ref::from_schema_name(&row_name)));
    }
    if r.deprecation.is_some() {
        ok = ok.header(
            "Deprecation",
            HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .description(Some("When the route was deprecated (RFC 9745)."))
                .build(),
        );
    }
    if r.deprecation.as_ref().is_some_and(|d| d.sunset.is_some()) {
        ok = ok.header(
            "Sunset",
            HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .description(Some("When the route goes away (RFC 8594)."))
                .build(),
        );
    }
    if r.deprecation
        .as_ref()
        .is_some_and(|d| d.successor.is_some())
    {
        let paged = r.write.is_none() && !r.one && r.list.page.is_some();
        ok = ok.header(
            "Link",
            HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                .description(Some(if paged {
                    "`<…>; rel=\"successor-version\"` (RFC 5829): the route that replaces this \
                     one; and `<…>; rel=\"next\"` (RFC 8288): the next page, when there is one."
                } else {
                    "`<…>; rel=\"successor-version\"` (RFC 5829): the route that replaces this one."
                }))
                .build(),
        );
    }
    let mut description = r.description.clone().unwrap_or_default();
    if let Some(d) = &r.deprecation {
        if !description.is_empty() {
            description.push_str("\n\n");
        }
        let _ = write!(description, "**Deprecated** since {}.", d.since.date);
        if let Some(s) = &d.sunset {
            let _ = write!(description, " Removed after {}.", s.date);
        }
        if let Some(s) = &d.successor {
            let _ = write!(
                description,
                " Use `{}` (`{}`) instead; responses name it in `Link: <...>; rel=\"successor-version\"`.",
                s.id, s.path
            );
        }
    }
    let mut op = OperationBuilder::new()
        .operation_id(Some(r.id.clone()))
        .summary(r.summary.clone())
        .description((!description.is_empty()).then_some(description))
        .tags(Some(r.tags.clone()))
        .parameters(Some(
            r.params
                .iter()
                .enumerate()
                .filter(|(_, p)| p.location != ParamLocation::Claim)
                .map(|(i, p)| parameter(p, learned_range(r, shape, i)))
                .chain(listing::parameters(r)),
        ))
        .deprecated(r.deprecation.as_ref().map(|_| Deprecated::True))
        .response("200", ok.build());
    if !r.params.is_empty() || r.write.is_none() {
        op = op.response(
            "400",
            problem_response(
                "A parameter is missing, malformed or unknown, or the database refused its value.",
            ),
        );
    }
    if r.one {
        op = op.response("404", problem_response("No row matches."));
    }
    if r.public {
        if info.bearer || info.api_keys {
            // Anyone may call it; credentials, when sent, must still be valid.
            op = op.security(SecurityRequirement::default());
            op = op.response("401", problem_response("The credentials sent are invalid."));
        }
    } else {
        if info.bearer {
            op = op.security(SecurityRequirement::new(BEARER, r.scopes.clone()));
        }
        if info.api_keys {
            op = op.security(SecurityRequirement::new(API_KEY, r.scopes.clone()));
        }
        op = op
            .response(
                "401",
                problem_response(
                    "Credentials are missing, invalid or expired (see WWW-Authenticate).",
                ),
            )
            .response(
                "403",
                problem_response(&format!(
                    "The caller lacks a scope: {}.",
                    r.scopes.join(", ")
                )),
            );
    }
    if info.rate_limited || r.rate_limit.is_some() {
        op = op.response(
            "429",
            problem_response(
                "The caller's rate limit is used up; see Retry-After and RateLimit-*.",
            ),
        );
    }
    if let Some(w) = &r.write {
        op = write_operation(op, w, written, !r.params.is_empty());
    }
    op = op
        .response(
            "500",
            problem_response("The statement failed, or a stored value does not fit its codec."),
        )
        .response(
            "503",
            problem_response("The database is unreachable or busy; see Retry-After."),
        )
        .response(
            "504",
            problem_response("The statement timed out and was cancelled."),
        );
    (op.build(), row_name, row_schema(r, shape))
}

/// What a write adds to its operation: the request body, its headers and its answers.
fn write_operation(
    mut op: OperationBuilder,
    w: &crate::catalog::WritePlan,
    written: RefOr<Schema>,
    has_params: bool,
) -> OperationBuilder {
    if let Some(body) = &w.body {
        let object = fields_schema(&body.fields);
        let schema: RefOr<Schema> = match body.bulk {
            Some(max) => ArrayBuilder::new()
                .items(object)
                .min_items(Some(1))
                .max_items(Some(max))
                .description(Some(format!("Up to {max} objects, written all or none.")))
                .into(),
            None => object.into(),
        };
        op = op.request_body(Some(
            utoipa::openapi::request_body::RequestBodyBuilder::new()
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(schema)).build(),
                )
                .required(Some(Required::True))
                .build(),
        ));
        op = op
            .response(
                "413",
                problem_response("The body is larger than the gateway accepts."),
            )
            .response(
                "415",
                problem_response("The body is not sent as application/json."),
            )
            .response(
                "422",
                problem_response(
                    "The body is invalid (every mistake is listed with its JSON pointer), or \
                     the database refused the write; nothing was written.",
                ),
            );
    }
    let header = |name: &str, required: bool, description: &str, pattern: Option<&str>| {
        // An Idempotency-Key is at most 255 characters; If-Match may list many tags.
        let max = pattern.map(|_| 255);
        ParameterBuilder::new()
            .name(name)
            .parameter_in(ParameterIn::Header)
            .required(if required {
                Required::True
            } else {
                Required::False
            })
            .description(Some(description))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(max)
                    .pattern(pattern),
            ))
            .build()
    };
    let mode = w.idempotency;
    op = op.parameter(header(
        "Idempotency-Key",
        mode == crate::catalog::Idempotency::Required,
        "A unique value per operation, the same on each retry: the first answer is \
         replayed (Idempotent-Replayed: true) and the write runs once.",
        // What the gateway takes: visible ASCII (a structured-field string's quotes too).
        Some("^[!-~]+$"),
    ));
    op = op.response(
        "400",
        problem_response(
            match (mode == crate::catalog::Idempotency::Required, has_params) {
                (true, false) => "The Idempotency-Key is missing or invalid.",
                (true, true) => {
                    "A parameter is missing, malformed or unknown, or the database refused \
                     its value; or the Idempotency-Key is missing or invalid."
                }
                (false, false) => "The Idempotency-Key is invalid.",
                (false, true) => {
                    "A parameter is missing, malformed or unknown, or the database refused \
                     its value; or the Idempotency-Key is invalid."
                }
            },
        ),
    );

    if let Some(m) = &w.if_match {
        op = op
            .parameter(header(
                "If-Match",
                m.required,
                &format!("The ETag of the record as `{}` returned it.", m.route),
                None,
            ))
            .response(
                "412",
                problem_response("The record changed since that ETag; nothing was written."),
            );
        if m.required {
            op = op.response("428", problem_response("If-Match is required."));
        }
    } else {
        op = op.response(
            "412",
            problem_response(
                "An If-Match with entity tags came: this route cannot check it; nothing was \
                 written.",
            ),
        );
    }
    if w.queue.is_some() {
        return queued::responses(op);
    }
    op = op
        .response(
            "201",
            ResponseBuilder::new()
                .description("Created: the written row, with its Location.")
                .header(
                    "Location",
                    HeaderBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                        .build(),
                )
                .content(
                    "application/json",
                    ContentBuilder::new().schema(Some(written)).build(),
                )
                .build(),
        )
        .response(
            "204",
            ResponseBuilder::new()
                .description("Written; nothing to answer.")
                .build(),
        )
        .response(
            "404",
            problem_response("The record to change does not exist; nothing was written."),
        )
        .response(
            "409",
            problem_response(
                "The write would duplicate a unique record, a request with this \
                 Idempotency-Key is still running, or the procedure refused it.",
            ),
        );
    op
}

/// A body object's schema: its fields, closed to others.
fn fields_schema(fields: &[crate::catalog::FieldPlan]) -> ObjectBuilder {
    let mut b = ObjectBuilder::new()
        .schema_type(Type::Object)
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for f in fields {
        let mut schema: Schema = match &f.ty {
            crate::catalog::FieldType::Value(t) => {
                let mut s = param_schema(t, None);
                if f.nullable {
                    s = s.schema_type(SchemaType::from_iter([
                        match t {
                            ParamType::Integer { .. } => Type::Integer,
                            ParamType::Number { .. } => Type::Number,
                            ParamType::Boolean { .. } => Type::Boolean,
                            _ => Type::String,
                        },
                        Type::Null,
                    ]));
                }
                s.description(f.description.clone()).into()
            }
            crate::catalog::FieldType::List {
                items,
                min_items,
                max_items,
            } => ArrayBuilder::new()
                .items(fields_schema(items))
                .min_items(Some(*min_items))
                .max_items(Some(*max_items))
                .description(f.description.clone())
                .into(),
        };
        if let (Some(e), Schema::Object(o)) = (&f.example, &mut schema) {
            o.example = Some(e.clone());
        }
        b = b.property(&f.name, schema);
        if f.required {
            b = b.required(&f.name);
        }
    }
    b
}

fn problem_response(description: &str) -> utoipa::openapi::response::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(Ref::from_schema_name(PROBLEM_SCHEMA))))
                .build(),
        )
        .build()
}

fn problem_schema() -> Schema {
    let string = || ObjectBuilder::new().schema_type(Type::String);
    ObjectBuilder::new()
        .description(Some("RFC 9457 problem details."))
        .property(
            "type",
            string().description(Some("`/problems/<slug>`, stable per kind of problem.")),
        )
        .property("title", string())
        .property("status", ObjectBuilder::new().schema_type(Type::Integer))
        .property("detail", string())
        .property("instance", string())
        .property("request_id", string())
        .property(
            "errors",
            ArrayBuilder::new().items(
                ObjectBuilder::new()
                    .property("name", string())
                    .property("in", string().enum_values(Some(["path", "query", "body"])))
                    .property(
                        "pointer",
                        string().description(Some(
                            "For a body field: where it is in the body (RFC 6901 JSON pointer).",
                        )),
                    )
                    .property("detail", string())
                    .required("name")
                    .required("in")
                    .required("detail"),
            ),
        )
        .required("type")
        .required("title")
        .required("status")
        .required("detail")
        .into()
}

fn bind_json(v: &BindValue, ty: &ParamType) -> serde_json::Value {
    // Defaults are documented in the caller's terms, not the stored form.
    match (v, ty) {
        (_, ParamType::Date(_) | ParamType::Code { .. } | ParamType::Boolean { .. }) => {
            serde_json::Value::Null
        }
        (
            BindValue::Text(t),
            ParamType::String {
                like: Some(like), ..
            },
        ) => json!(like.text(t)),
        (BindValue::Int(i), _) => json!(i),
        (BindValue::Float(f), _) => json!(f),
        (BindValue::Text(t), _) => json!(t),
        (BindValue::Null(_), _) => serde_json::Value::Null,
    }
}

/// The tightest range the database gave for the placeholders parameter `param` fills.
fn learned_range(r: &RoutePlan, shape: Option<&Described>, param: usize) -> Option<IntRange> {
    let shape = shape?;
    r.bind_order
        .iter()
        .zip(&shape.params)
        .filter(|(p, _)| **p == param)
        .filter_map(|(_, s)| s.range)
        .min_by_key(|range| range.max.abs_diff(range.min))
}

fn param_schema(ty: &ParamType, range: Option<IntRange>) -> ObjectBuilder {
    let b = ObjectBuilder::new();
    match ty {
        ParamType::Integer { minimum, maximum } => {
            let (format, minimum, maximum) = match range {
                Some(range) => (
                    if range.bits == Some(32) {
                        KnownFormat::Int32
                    } else {
                        KnownFormat::Int64
                    },
                    Some(minimum.map_or(range.min, |m| m.max(range.min))),
                    Some(maximum.map_or(range.max, |m| m.min(range.max))),
                ),
                None => (KnownFormat::Int64, *minimum, *maximum),
            };
            b.schema_type(Type::Integer)
                .format(Some(SchemaFormat::KnownFormat(format)))
                .minimum(minimum.map(f64_of))
                .maximum(maximum.map(f64_of))
        }
        ParamType::Number { minimum, maximum } => b
            .schema_type(Type::Number)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Double)))
            .minimum(*minimum)
            .maximum(*maximum),
        ParamType::String {
            min_length,
            max_length,
            pattern,
            ..
        } => b
            .schema_type(Type::String)
            .min_length(*min_length)
            .max_length(*max_length)
            // Text with a NUL character is refused (no database keeps it as text).
            .pattern(Some(pattern.as_ref().map_or_else(
                || r"^[^\x00]*$".to_string(),
                |p| p.as_str().to_string(),
            ))),
        ParamType::Boolean { .. } => b.schema_type(Type::Boolean),
        // The pattern states the years the storage form can hold.
        ParamType::Date(f) => b
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date)))
            .pattern(Some(match f {
                DateFormat::Cyymmdd => "^(19[0-9]{2}|2[0-8][0-9]{2})-[0-9]{2}-[0-9]{2}$",
                DateFormat::Iso | DateFormat::Yyyymmdd => {
                    "^([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])-[0-9]{2}-[0-9]{2}$"
                }
            })),
        ParamType::Code { codes } => b
            .schema_type(Type::String)
            .enum_values(Some(codes.iter().map(|(w, _)| w.clone()))),
        ParamType::Decimal { precision, scale } => b
            .schema_type(Type::String)
            .pattern(Some(decimal_pattern(*precision, *scale)))
            .description(Some(
                "An exact decimal, as a string (a JSON number is accepted too); digits beyond \
                 its scale are refused, never rounded.",
            )),
        ParamType::DateTime => b
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .pattern(Some(
                "^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\\.[0-9]{1,9})?)?Z?$",
            )),
        ParamType::Time(_) => b
            .schema_type(Type::String)
            .pattern(Some("^([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9])?$")),
    }
}

/// The decimals a precision and scale allow, as a pattern.
fn decimal_pattern(precision: Option<u8>, scale: Option<u8>) -> String {
    let int = match (precision, scale) {
        (Some(p), s) => format!("{{1,{}}}", p.saturating_sub(s.unwrap_or(0)).max(1)),
        (None, _) => "+".to_string(),
    };
    let frac = match scale {
        Some(0) => String::new(),
        Some(s) => format!("(\\.[0-9]{{1,{s}}})?"),
        None => "(\\.[0-9]+)?".to_string(),
    };
    format!("^-?[0-9]{int}{frac}$")
}

#[allow(clippy::cast_precision_loss)]
fn f64_of(v: i64) -> f64 {
    v as f64
}

fn parameter(p: &ParamPlan, range: Option<IntRange>) -> utoipa::openapi::path::Parameter {
    let mut schema = param_schema(&p.ty, range);
    if let Some(d) = &p.default {
        let v = bind_json(d, &p.ty);
        if !v.is_null() {
            schema = schema.default(Some(v));
        }
    }
    let mut description = p.description.clone().unwrap_or_default();
    match &p.ty {
        ParamType::Date(f) if *f != DateFormat::Iso => {
            if !description.is_empty() {
                description.push(' ');
            }
            description.push_str("(ISO 8601 date; the gateway converts it for the database.)");
        }
        ParamType::Boolean { .. } => {
            if !description.is_empty() {
                description.push(' ');
            }
            description.push_str("(`true` or `false`.)");
        }
        ParamType::String { like: Some(l), .. } => {
            if !description.is_empty() {
                description.push(' ');
            }
            description.push_str(match l.at {
                LikeAt::Prefix => "(Matched as the start of the value",
                LikeAt::Contains => "(Matched anywhere in the value",
                LikeAt::Suffix => "(Matched as the end of the value",
            });
            description.push_str("; `%` and `_` match themselves.)");
        }
        _ => {}
    }
    ParameterBuilder::new()
        .name(&p.name)
        .parameter_in(match p.location {
            ParamLocation::Path => ParameterIn::Path,
            ParamLocation::Query | ParamLocation::Claim => ParameterIn::Query,
        })
        .required(if p.required {
            Required::True
        } else {
            Required::False
        })
        .description((!description.is_empty()).then_some(description))
        .schema(Some(schema))
        .example(p.example.clone())
        .build()
}

/// The row as served. Once the database has described the statement, every result column is
/// listed with the codec the encoder gives it ([`RoutePlan::output_of`]) and the schema is
/// closed (`additionalProperties: false`), so a response validator catches any drift. Before,
/// the mapping's columns are listed, a column whose codec the database's type decides accepts
/// any JSON value, and the schema stays open: the statement may return columns the mapping
/// does not name.
fn row_schema(r: &RoutePlan, shape: Option<&Described>) -> Schema {
    let mut b = ObjectBuilder::new().description(r.summary.clone());
    // A read's `fields` may leave any field out, so only a write's row lists them as required.
    let required = |b: ObjectBuilder, name: &str| {
        if r.write.is_some() {
            b.required(name)
        } else {
            b
        }
    };
    match shape {
        Some(shape) => {
            b = b.additional_properties(Some(AdditionalProperties::FreeForm(false)));
            for c in &shape.columns {
                let (name, codec) = r.output_of(c);
                let plan = r.column(&c.name);
                let s = served_schema(
                    column_schema(
                        Some(&codec.ty),
                        codec.nullable || codec.on_invalid == OnInvalid::Null,
                        plan.and_then(|p| p.description.as_deref()),
                        plan.and_then(|p| p.example.as_ref()),
                    ),
                    codec.on_invalid,
                );
                b = required(b.property(&name, s), &name);
            }
        }
        None => {
            for c in &r.columns {
                let policy = c.on_invalid.unwrap_or(r.on_invalid);
                let s = served_schema(
                    column_schema(
                        c.ty.as_ref(),
                        c.nullable || policy == OnInvalid::Null,
                        c.description.as_deref(),
                        c.example.as_ref(),
                    ),
                    policy,
                );
                b = required(b.property(&c.output, s), &c.output);
            }
        }
    }
    b.into()
}

/// A field as served under its `on_invalid`: with `raw`, the decoded value or, for a stored
/// value that does not decode, that value's text.
fn served_schema(decoded: ObjectBuilder, policy: OnInvalid) -> RefOr<Schema> {
    match policy {
        OnInvalid::Raw => OneOfBuilder::new()
            .item(decoded)
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("The stored value as text: it does not decode.")),
            )
            .into(),
        OnInvalid::Error | OnInvalid::Null => decoded.into(),
    }
}

fn types(t: Type, nullable: bool) -> SchemaType {
    if nullable {
        SchemaType::from_iter([t, Type::Null])
    } else {
        SchemaType::Type(t)
    }
}

/// A column's schema: `ty` is its codec, `None` while only the database's type decides it.
fn column_schema(
    ty: Option<&ColumnType>,
    n: bool,
    description: Option<&str>,
    example: Option<&serde_json::Value>,
) -> ObjectBuilder {
    let b = ObjectBuilder::new().description(description.map(str::to_string));
    let b = match ty {
        None => b.schema_type(SchemaType::AnyValue).description(Some(join(
            description,
            "Typed as the database column is (the mapping gives no `type`).",
        ))),
        Some(ColumnType::String) => b.schema_type(types(Type::String, n)),
        Some(ColumnType::Integer) => b
            .schema_type(types(Type::Integer, n))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Int64))),
        Some(ColumnType::Number) => b
            .schema_type(types(Type::Number, n))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Double))),
        Some(ColumnType::Decimal { as_string, scale }) => {
            let b = if *as_string {
                b.schema_type(types(Type::String, n))
                    .pattern(Some("^-?[0-9]+(\\.[0-9]+)?$"))
            } else {
                b.schema_type(types(Type::Number, n))
            };
            b.format(Some(SchemaFormat::Custom("decimal".into())))
                .description(Some(join(
                    description,
                    &match scale {
                        Some(s) => format!("Exact decimal, at least {s} decimal places."),
                        None => "Exact decimal: every digit the database holds.".to_string(),
                    },
                )))
        }
        Some(ColumnType::Boolean { .. }) => b.schema_type(types(Type::Boolean, n)),
        Some(ColumnType::Date(_)) => b
            .schema_type(types(Type::String, n))
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Date))),
        Some(ColumnType::Time(TimeFormat::Iso | TimeFormat::Hhmmss)) => b
            .schema_type(types(Type::String, n))
            .pattern(Some("^[0-2][0-9]:[0-5][0-9]:[0-5][0-9]$"))
            .description(Some(join(description, "Local time of day, hh:mm:ss."))),
        Some(ColumnType::DateTime) => b
            .schema_type(types(Type::String, n))
            .pattern(Some(
                "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})?$",
            ))
            .description(Some(join(
                description,
                "Date and time: local, or with its UTC offset when the database stores one.",
            ))),
        Some(ColumnType::Code { codes, unknown }) => {
            let words: Vec<serde_json::Value> = codes.iter().map(|(_, w)| json!(w)).collect();
            let b = b.schema_type(types(Type::String, n || *unknown == UnknownCode::Null));
            if *unknown == UnknownCode::Raw {
                b.examples(words.into_iter().take(1)).description(Some(join(
                    description,
                    &format!(
                        "One of: {}; a stored code the mapping does not know is passed as is.",
                        codes
                            .iter()
                            .map(|(_, w)| w.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )))
            } else {
                let mut values = words;
                if n || *unknown == UnknownCode::Null {
                    values.push(serde_json::Value::Null);
                }
                b.enum_values(Some(values))
            }
        }
        Some(ColumnType::Binary) => b
            .schema_type(types(Type::String, n))
            .content_encoding("base64"),
    };
    match example {
        Some(e) => b.examples([e.clone()]),
        None => b,
    }
}

fn join(a: Option<&str>, b: &str) -> String {
    match a {
        Some(a) if !a.is_empty() => format!("{a} {b}"),
        _ => b.to_string(),
    }
}

#[cfg(test)]
mod tests;
