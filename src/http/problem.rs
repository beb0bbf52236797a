//! The one place internal errors become client errors: `application/problem+json` bodies
//! (RFC 9457) with stable `type` slugs. Full causes are logged by the caller; nothing here ever
//! carries SQL, driver text or secrets to the client.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{HttpResponse, HttpResponseBuilder};
use serde::Serialize;

use crate::source::SourceError;

/// One bad request parameter.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct FieldError {
    pub name: String,
    #[serde(rename = "in")]
    pub location: &'static str,
    pub detail: String,
    /// For a body field: where it is in the body (RFC 6901), e.g. `/lines/2/quantity`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pointer: Option<String>,
}

/// A problem to report to the client.
#[derive(Clone, Debug)]
pub struct Problem {
    pub status: StatusCode,
    /// Stable slug; the `type` is `/problems/<slug>`.
    pub slug: &'static str,
    pub title: &'static str,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub retry_after: Option<u64>,
    pub allow: Option<String>,
    /// Further headers (`WWW-Authenticate`, `RateLimit-*`), appended as given.
    pub headers: Vec<(HeaderName, String)>,
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    ty: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    instance: &'a str,
    request_id: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
}

impl Problem {
    pub fn new(
        status: StatusCode,
        slug: &'static str,
        title: &'static str,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            status,
            slug,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
            allow: None,
            headers: Vec::new(),
        }
    }

    /// 401: missing or invalid credentials. Which part failed is not said.
    pub fn unauthorized(challenges: Vec<String>) -> Self {
        Self {
            headers: challenges
                .into_iter()
                .map(|c| (header::WWW_AUTHENTICATE, c))
                .collect(),
            ..Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unauthorized",
                "This route needs valid credentials: a Bearer token or an X-API-Key.",
            )
        }
    }

    /// 403: authenticated, but not allowed.
    pub fn forbidden(detail: impl Into<String>, challenge: Option<String>) -> Self {
        Self {
            headers: challenge
                .into_iter()
                .map(|c| (header::WWW_AUTHENTICATE, c))
                .collect(),
            ..Self::new(StatusCode::FORBIDDEN, "forbidden", "Forbidden", detail)
        }
    }

    /// 429, with `Retry-After`.
    pub fn too_many_requests(retry_after: u64) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate-limited",
                "Too Many Requests",
                format!("The rate limit for this caller is used up; retry in {retry_after} s."),
            )
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not Found", detail)
    }

    pub fn bad_parameters(errors: Vec<FieldError>) -> Self {
        let detail = if errors.len() == 1 {
            "A request parameter is invalid.".to_string()
        } else {
            format!("{} request parameters are invalid.", errors.len())
        };
        Self {
            errors,
            ..Self::new(
                StatusCode::BAD_REQUEST,
                "invalid-parameters",
                "Invalid Parameters",
                detail,
            )
        }
    }

    /// 422: a request body with these mistakes (every one of them).
    pub fn invalid_body(errors: Vec<FieldError>) -> Self {
        let detail = if errors.len() == 1 {
            "A field of the request body is invalid; nothing was written.".to_string()
        } else {
            format!(
                "{} fields of the request body are invalid; nothing was written.",
                errors.len()
            )
        };
        Self {
            errors,
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid-body",
                "Invalid Body",
                detail,
            )
        }
    }

    pub fn method_not_allowed(allowed: &[String]) -> Self {
        Self {
            allow: Some(allowed.join(", ")),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                "Method Not Allowed",
                format!("This resource answers {}.", allowed.join(", ")),
            )
        }
    }

    /// The client-facing form of a source error. The caller logs the full error.
    pub fn from_source(e: &SourceError) -> Self {
        match e {
            SourceError::Busy(_) => Self {
                retry_after: Some(1),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "source-busy",
                    "Source Busy",
                    "Every connection to the database is in use. Try again shortly.",
                )
            },
            SourceError::QueueFull => Self {
                retry_after: Some(1),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "source-busy",
                    "Source Busy",
                    "Too many requests are waiting for the database. Try again shortly.",
                )
            },
            SourceError::CircuitOpen(wait) => Self {
                retry_after: Some(wait.as_secs() + 1),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "source-unavailable",
                    "Source Unavailable",
                    "The database behind this route cannot be reached right now.",
                )
            },
            SourceError::Unavailable(_) | SourceError::Closed => Self {
                retry_after: Some(5),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "source-unavailable",
                    "Source Unavailable",
                    "The database behind this route cannot be reached right now.",
                )
            },
            SourceError::Timeout => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "statement-timeout",
                "Statement Timeout",
                "The database did not answer in time; the statement was cancelled.",
            ),
            SourceError::OutOfRange { .. } | SourceError::BadValue(_) => Self::new(
                StatusCode::BAD_REQUEST,
                "value-refused",
                "Value Refused",
                "The database refused a parameter value as out of range or malformed for its \
                 column.",
            ),
            SourceError::Conflict(_) => Self::new(
                StatusCode::CONFLICT,
                "conflict",
                "Conflict",
                "The write would duplicate a record that must be unique; nothing was written.",
            ),
            SourceError::Constraint(_) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "constraint-refused",
                "Refused by the Database",
                "The database refused the write: a value refers to a record that does not \
                 exist, or breaks one of its rules. Nothing was written.",
            ),
            SourceError::Deadlock(_) => Self {
                retry_after: Some(1),
                ..Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "write-contention",
                    "Write Contention",
                    "Concurrent writes kept colliding; nothing was written. Try again shortly.",
                )
            },
            SourceError::Query(_) | SourceError::Stopped => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "statement-failed",
                "Statement Failed",
                "The database rejected this route's statement. The gateway log has the details.",
            ),
            SourceError::Decode(s) => Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "undecodable-value",
                "Undecodable Value",
                format!(
                    "Field `{}` holds a stored value its mapping cannot decode. The gateway log \
                     has the details.",
                    s.column
                ),
            ),
        }
    }

    /// The problem as the JSON object a response would carry.
    pub fn to_json(&self, instance: &str, request_id: &str) -> Vec<u8> {
        serde_json::to_vec(&Body {
            ty: format!("/problems/{}", self.slug),
            title: self.title,
            status: self.status.as_u16(),
            detail: &self.detail,
            instance,
            request_id,
            errors: &self.errors,
        })
        .unwrap_or_default()
    }

    /// 400: a page cursor this query did not write (forged, changed, or from another route,
    /// other parameters or another sort).
    pub fn bad_cursor() -> Self {
        Self::bad_parameters(vec![FieldError {
            name: "cursor".into(),
            location: "query",
            detail: "is not a cursor of this query: take `next` of the previous page, with the same parameters and sort".into(),
            pointer: None,
        }])
    }

    /// 406: the client accepts none of the media types the route answers in.
    pub fn not_acceptable(offered: &[&str]) -> Self {
        Self::new(
            StatusCode::NOT_ACCEPTABLE,
            "not-acceptable",
            "Not Acceptable",
            format!("This route answers in {}.", offered.join(", ")),
        )
    }

    pub fn response(&self, instance: &str, request_id: &str) -> HttpResponse {
        let mut b = HttpResponseBuilder::new(self.status);
        b.insert_header((
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        ));
        b.insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
        if let Some(s) = self.retry_after {
            b.insert_header((header::RETRY_AFTER, s.to_string()));
        }
        if let Some(a) = &self.allow
            && let Ok(v) = HeaderValue::from_str(a)
        {
            b.insert_header((header::ALLOW, v));
        }
        for (name, value) in &self.headers {
            if let Ok(v) = HeaderValue::from_str(value) {
                b.append_header((name.clone(), v));
            }
        }
        b.body(self.to_json(instance, request_id))
    }
}
