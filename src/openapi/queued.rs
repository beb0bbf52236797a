//! What the documents say of queued writes: their `202 Accepted` (with the delivery's
//! `Location`), the refusals only a queue has (`503` when full), and the
//! `/{version}/_deliveries/{id}` resource a sender follows to see where its write stands.

use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{ContentBuilder, HeaderBuilder, PathItem, Ref, RefOr, Required};

use super::{API_KEY, BEARER, problem_response};
use crate::config::DocsInfo;

/// The schema of a delivery as its sender reads it.
const DELIVERY_SCHEMA: &str = "Delivery";

fn string() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

fn date_time() -> ObjectBuilder {
    string().format(Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(
        utoipa::openapi::schema::KnownFormat::DateTime,
    )))
}

/// A queued write's answers, in place of a direct write's 201/204/404/409.
pub(super) fn responses(op: OperationBuilder) -> OperationBuilder {
    let accepted = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("id", string().description(Some("The delivery's id.")))
        .property("status", string().enum_values(Some(["pending"])))
        .property(
            "href",
            string().description(Some("Where the delivery can be followed.")),
        )
        .required("id")
        .required("status")
        .required("href")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    op.response(
        "202",
        ResponseBuilder::new()
            .description(
                "Accepted: the write is on disk in the gateway's queue and will be delivered \
                 to the database; follow its Location.",
            )
            .header(
                "Location",
                HeaderBuilder::new().schema(Some(string())).build(),
            )
            .content(
                "application/json",
                ContentBuilder::new().schema(Some(accepted)).build(),
            )
            .build(),
    )
    .response(
        "409",
        problem_response("A request with this Idempotency-Key is still being processed."),
    )
    .response(
        "503",
        problem_response(
            "The queue is full (or the gateway cannot store the write right now); nothing was \
             accepted. Retry after Retry-After.",
        ),
    )
}

/// `/{version}/_deliveries/{id}`: its path, item, and the schema it answers with.
pub(super) fn deliveries(version: &str, info: &DocsInfo) -> (String, PathItem, String, Schema) {
    let mut op = OperationBuilder::new()
        .operation_id(Some(format!("getDelivery_{version}")))
        .summary(Some("Where a queued write stands"))
        .description(Some(
            "A write accepted with 202 is `pending` until the database has it (`delivered`, \
             with the written row in `result` when the route returns one) or it failed for \
             good (`dead`: an operator sees it, fixes the cause and replays it). Only its \
             sender (or an administrator) can read it.",
        ))
        .tag("deliveries")
        .parameter(
            ParameterBuilder::new()
                .name("id")
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(string().min_length(Some(1)).max_length(Some(64))))
                .build(),
        )
        .response(
            "200",
            ResponseBuilder::new()
                .description("The delivery.")
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(RefOr::Ref(Ref::from_schema_name(DELIVERY_SCHEMA))))
                        .build(),
                )
                .build(),
        )
        .response(
            "401",
            problem_response("Credentials are missing, invalid or expired."),
        )
        .response("404", problem_response("No delivery of yours has this id."))
        .response(
            "503",
            problem_response("The queue cannot be read right now."),
        );
    if info.bearer {
        op = op.security(SecurityRequirement::new(BEARER, Vec::<String>::new()));
    }
    if info.api_keys {
        op = op.security(SecurityRequirement::new(API_KEY, Vec::<String>::new()));
    }
    let schema = ObjectBuilder::new()
        .schema_type(Type::Object)
        .property("id", string())
        .property("route", string())
        .property(
            "status",
            string().enum_values(Some(["pending", "delivered", "dead"])),
        )
        .property(
            "attempts",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        )
        .property("accepted_at", date_time())
        .property("next_attempt_at", date_time())
        .property("finished_at", date_time())
        .property(
            "last_error",
            string().description(Some(
                "The last failure's category (source-unavailable, statement-timeout, \
                 conflict, constraint-refused, …).",
            )),
        )
        .property("last_error_detail", string())
        .property("location", string())
        .property(
            "result",
            ObjectBuilder::new()
                .description(Some("The written row, when the route answers with one."))
                .additional_properties(Some(AdditionalProperties::FreeForm(true))),
        )
        // An administrator sees the request and every attempt too.
        .property("identity", string())
        .property(
            "mappings",
            string().description(Some("Digest of the mappings it was accepted under.")),
        )
        .property("path", string())
        .property("query", string())
        .property(
            "body",
            ObjectBuilder::new().description(Some("The request body as sent.")),
        )
        .property(
            "history",
            utoipa::openapi::schema::ArrayBuilder::new().items(
                ObjectBuilder::new()
                    .schema_type(Type::Object)
                    .property("at", date_time())
                    .property("outcome", string())
                    .property(
                        "detail",
                        ObjectBuilder::new().schema_type(
                            utoipa::openapi::schema::SchemaType::from_iter([
                                Type::String,
                                Type::Null,
                            ]),
                        ),
                    ),
            ),
        )
        .required("id")
        .required("route")
        .required("status")
        .required("attempts")
        .required("accepted_at")
        .additional_properties(Some(AdditionalProperties::FreeForm(false)))
        .into();
    (
        format!("/{version}/_deliveries/{{id}}"),
        PathItem::new(HttpMethod::Get, op.build()),
        DELIVERY_SCHEMA.to_string(),
        schema,
    )
}
