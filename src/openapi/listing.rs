//! What a read route's document says about its controls: `fields` on every read; on a list,
//! `limit` and `cursor` (keyset pages), `sort` (the whitelist, each name ascending or with
//! `-` descending), `count` and `Prefer: count=exact`, `format` and the export media types, and
//! the headers that come back (`Link`, `X-Total-Count`, `Preference-Applied`,
//! `X-Count-Status`).

use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn, ParameterStyle};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, SchemaType, Type};
use utoipa::openapi::{ContentBuilder, HeaderBuilder, RefOr, Required, Schema};

use crate::catalog::RoutePlan;

fn query(name: &str, description: String, schema: impl Into<RefOr<Schema>>) -> ParameterBuilder {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(schema))
}

fn comma_list(values: Vec<String>) -> ArrayBuilder {
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .enum_values(Some(values)),
        )
        .min_items(Some(1))
}

/// The query controls a read route takes, after its own parameters.
pub(super) fn parameters(r: &RoutePlan) -> Vec<Parameter> {
    if r.write.is_some() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let names: Vec<String> = r.columns.iter().map(|c| c.output.clone()).collect();
    if !names.is_empty() {
        out.push(
            query(
                "fields",
                "Only these fields in each row (comma-separated).".into(),
                comma_list(names),
            )
            .style(Some(ParameterStyle::Form))
            .explode(Some(false))
            .build(),
        );
    }
    if r.one {
        return out;
    }
    let list = &r.list;
    if let Some(page) = &list.page {
        out.push(
            query(
                "limit",
                format!("Rows per page (default {}).", page.size),
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(u32::try_from(page.max).unwrap_or(u32::MAX)))
                    .default(Some(page.size.into())),
            )
            .build(),
        );
        out.push(
            query(
                "cursor",
                "Where the page starts: `next` of the previous page (opaque; valid only with the same parameters and sort).".into(),
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .pattern(Some("^[A-Za-z0-9_-]+$")),
            )
            .build(),
        );
    }
    if !list.sort.is_empty() {
        let by: Vec<String> = list
            .page
            .iter()
            .flat_map(|p| &p.by)
            .map(|k| format!("{}{}", if k.descending { "-" } else { "" }, k.output))
            .collect();
        let values = list
            .sort
            .iter()
            .flat_map(|s| [s.output.clone(), format!("-{}", s.output)])
            .collect();
        out.push(
            query(
                "sort",
                format!(
                    "Order of the rows (comma-separated; a leading `-` sorts descending; NULL sorts after every value). Ties are broken by {}. Default: {}.",
                    by.join(", "),
                    by.join(",")
                ),
                comma_list(values),
            )
            .style(Some(ParameterStyle::Form))
            .explode(Some(false))
            .build(),
        );
    }
    if let Some(budget) = list.count {
        out.push(
            query(
                "count",
                format!(
                    "`exact`: add `total`, the rows of the whole list, counted within {} (else `total` is null and `X-Count-Status` says why). The same as `Prefer: count=exact`.",
                    humantime(budget)
                ),
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["exact"])),
            )
            .build(),
        );
        out.push(
            ParameterBuilder::new()
                .name("Prefer")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(
                    "Preferences (RFC 7240): `count=exact` asks for `total`, and `Preference-Applied` says when it was counted. Other preferences are ignored, as RFC 7240 asks.",
                ))
                .schema(Some(
                    ObjectBuilder::new()
                        .schema_type(Type::String)
                        .examples(["count=exact"]),
                ))
                .build(),
        );
    }
    if let Some(export) = list.export {
        out.push(
            query(
                "format",
                format!(
                    "`ndjson` or `csv`: stream every row (at most {}) instead of a page, like `Accept: application/x-ndjson` or `text/csv`; for links in a browser.",
                    export.max_rows
                ),
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .enum_values(Some(["json", "ndjson", "csv"])),
            )
            .build(),
        );
    }
    out
}

fn humantime(d: std::time::Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

/// A list's 200: the envelope's `total` when counts are offered, the headers, and the export
/// media types.
pub(super) fn list_response(
    r: &RoutePlan,
    mut ok: ResponseBuilder,
    row: RefOr<Schema>,
) -> ResponseBuilder {
    let header = |description: &str| {
        HeaderBuilder::new()
            .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
            .description(Some(description.to_string()))
            .build()
    };
    if r.list.page.is_some() {
        ok = ok.header(
            "Link",
            header("`<…>; rel=\"next\"` (RFC 8288): the next page, when there is one."),
        );
    }
    if r.list.count.is_some() {
        ok = ok
            .header(
                "X-Total-Count",
                header("The rows of the whole list, when a count was asked for and made in time."),
            )
            .header("Preference-Applied", header("`count=exact` when counted."))
            .header(
                "X-Count-Status",
                header(
                    "Why `total` is null: `timeout` (past the route's time budget) or `failed`.",
                ),
            );
    }
    if let Some(export) = r.list.export {
        ok = ok
            .description(format!(
                "The rows. With `Accept: application/x-ndjson` (one row per line) or `text/csv` \
                 (RFC 4180, a header row of field names), or `format=`, every row is streamed \
                 instead of a page, at most {}. A stream that fails or stops at that cap ends so \
                 that a client can tell: NDJSON with a last line `{{\"error\": problem}}`, CSV cut \
                 off (the connection closes before the end of the chunked body).",
                export.max_rows
            ))
            .content(
                "application/x-ndjson",
                ContentBuilder::new().schema(Some(row)).build(),
            )
            .content(
                "text/csv",
                ContentBuilder::new()
                    .schema(Some(ObjectBuilder::new().schema_type(Type::String)))
                    .build(),
            );
    }
    ok
}

/// The `total` of a list envelope.
pub(super) fn total_schema() -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Integer, Type::Null]))
        .description(Some(
            "With `count=exact`: the rows of the whole list; null when the count ran past its time budget.",
        ))
}
