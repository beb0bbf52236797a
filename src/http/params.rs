//! Request parameters → values to bind: path and query text checked against the route's
//! declared parameters, unknown and repeated names refused, defaults and NULLs filled in, all
//! problems collected. Pure; no IO.

use percent_encoding::percent_decode;

use super::problem::FieldError;
use crate::catalog::{ParamLocation, RoutePlan};
use crate::codec::BindValue;

pub(super) fn decode(raw: &str, plus_is_space: bool) -> Option<String> {
    let bytes: Vec<u8> = if plus_is_space {
        raw.bytes()
            .map(|b| if b == b'+' { b' ' } else { b })
            .collect()
    } else {
        raw.as_bytes().to_vec()
    };
    percent_decode(&bytes)
        .decode_utf8()
        .ok()
        .map(std::borrow::Cow::into_owned)
}

/// Why values could not be bound.
#[derive(Debug, PartialEq, Eq)]
pub enum BindError {
    /// Bad request parameters (400).
    Invalid(Vec<FieldError>),
    /// The verified identity lacks a claim the route binds, or it has the wrong type (403).
    Claim(String),
}

/// The values to bind, in placeholder order, or every problem found. `claim` reads a claim of
/// the verified caller.
pub fn bind_values(
    route: &RoutePlan,
    path_params: &[(String, String)],
    query: &str,
    claim: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<BindValue>, BindError> {
    let values = param_values(route, path_params, query, claim)?;
    Ok(route
        .bind_order
        .iter()
        .map(|&i| values[i].clone())
        .collect())
}

/// Each parameter's value, in the route's parameter order, or every problem found.
pub fn param_values(
    route: &RoutePlan,
    path_params: &[(String, String)],
    query: &str,
    claim: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<BindValue>, BindError> {
    let mut errors = Vec::new();
    let mut given: Vec<Option<String>> = vec![None; route.params.len()];
    for (name, raw) in path_params {
        let Some(i) = route.params.iter().position(|p| &p.name == name) else {
            continue;
        };
        match decode(raw, false) {
            Some(v) => given[i] = Some(v),
            None => errors.push(FieldError {
                name: name.clone(),
                location: "path",
                detail: "is not valid UTF-8 after percent-decoding".into(),
                pointer: None,
            }),
        }
    }
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(k), Some(v)) = (decode(k, true), decode(v, true)) else {
            errors.push(FieldError {
                name: String::from_utf8_lossy(k.as_bytes()).into_owned(),
                location: "query",
                detail: "is not valid UTF-8 after percent-decoding".into(),
                pointer: None,
            });
            continue;
        };
        let pos = route
            .params
            .iter()
            .position(|p| p.name == k && p.location == ParamLocation::Query);
        match pos {
            None => {
                let known: Vec<&str> = route
                    .params
                    .iter()
                    .filter(|p| p.location == ParamLocation::Query)
                    .map(|p| p.name.as_str())
                    .collect();
                errors.push(FieldError {
                    detail: if known.is_empty() {
                        "is not a parameter of this route, which takes no query parameters".into()
                    } else {
                        format!(
                            "is not a parameter of this route; it takes: {}",
                            known.join(", ")
                        )
                    },
                    name: k,
                    location: "query",
                    pointer: None,
                });
            }
            Some(i) if given[i].is_some() => {
                if !errors.iter().any(|e| e.name == k) {
                    errors.push(FieldError {
                        name: k,
                        location: "query",
                        detail: "is given more than once".into(),
                        pointer: None,
                    });
                }
            }
            Some(i) => given[i] = Some(v),
        }
    }
    let mut values = Vec::with_capacity(route.params.len());
    for (p, g) in route.params.iter().zip(given) {
        let location = match p.location {
            ParamLocation::Path | ParamLocation::Query => p.location.as_str(),
            ParamLocation::Claim => {
                let name = p.claim.as_deref().unwrap_or(&p.name);
                match claim(name).map(|v| p.ty.parse(&v)) {
                    Some(Ok(v)) => values.push(v),
                    _ => return Err(BindError::Claim(name.to_string())),
                }
                continue;
            }
        };
        let v = match g {
            Some(text) => match p.ty.parse(&text) {
                Ok(v) => v,
                Err(detail) => {
                    errors.push(FieldError {
                        name: p.name.clone(),
                        location,
                        detail,
                        pointer: None,
                    });
                    continue;
                }
            },
            None if p.required => {
                errors.push(FieldError {
                    name: p.name.clone(),
                    location,
                    detail: "is required".into(),
                    pointer: None,
                });
                continue;
            }
            None => p.unset(),
        };
        values.push(v);
    }
    if !errors.is_empty() {
        return Err(BindError::Invalid(errors));
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::BindKind;
    use crate::mapping::testing::{compile_text, sources};

    fn route() -> std::sync::Arc<RoutePlan> {
        let text = r#"source = "pg"
[[route]]
id = "r"
path = "/jobs/{job}"
sql = "SELECT :job, :status, :status, :from, :limit"
params.job = { type = "integer" }
params.status = { codes = { R = "released" } }
params.from = { type = "date", format = "cyymmdd" }
params.limit = { type = "integer", default = 10, maximum = 50 }
public = true
"#;
        compile_text("f.toml", text, &sources())
            .expect("compiles")
            .routes[0]
            .clone()
    }

    fn path(v: &str) -> Vec<(String, String)> {
        vec![("job".to_string(), v.to_string())]
    }

    fn no_claims(_: &str) -> Option<String> {
        None
    }

    fn bind_values(
        r: &RoutePlan,
        p: &[(String, String)],
        q: &str,
    ) -> Result<Vec<BindValue>, Vec<FieldError>> {
        super::bind_values(r, p, q, &no_claims).map_err(|e| match e {
            BindError::Invalid(v) => v,
            BindError::Claim(c) => panic!("claim {c}"),
        })
    }

    #[test]
    fn binds_in_placeholder_order_with_defaults_and_nulls() {
        let r = route();
        let v = bind_values(&r, &path("7"), "from=2024-01-05").expect("valid");
        assert_eq!(
            v,
            [
                BindValue::Int(7),
                BindValue::Null(BindKind::Text),
                BindValue::Null(BindKind::Text),
                BindValue::Int(1_240_105),
                BindValue::Int(10),
            ]
        );
        let v = bind_values(&r, &path("7"), "status=released&limit=3").expect("valid");
        assert_eq!(v[1], BindValue::Text("R".into()));
        assert_eq!(v[4], BindValue::Int(3));
    }

    #[test]
    fn collects_every_problem() {
        let r = route();
        let e = bind_values(
            &r,
            &path("1 OR 1=1"),
            "status=bogus&limit=99&limit=1&x=1&job=2",
        )
        .unwrap_err();
        let names: Vec<(&str, &str)> = e.iter().map(|e| (e.name.as_str(), e.location)).collect();
        assert_eq!(
            names,
            [
                ("limit", "query"),
                ("x", "query"),
                ("job", "query"),
                ("job", "path"),
                ("status", "query"),
                ("limit", "query"),
            ]
        );
        assert!(e[1].detail.contains("it takes: status, from, limit"));
    }

    #[test]
    fn percent_and_plus_decoding() {
        let r = route();
        let e = bind_values(&r, &path("%31"), "status=rel%65ased").expect("valid");
        assert_eq!(e[0], BindValue::Int(1));
        assert_eq!(e[1], BindValue::Text("R".into()));
        let e = bind_values(&r, &path("1"), "status=%ff").unwrap_err();
        assert!(e[0].detail.contains("UTF-8"));
    }
}
