//! The `[state]` keys that choose where shared state lives: `backend` (`embedded` or `redis`),
//! `redis_url` (expanded from the environment, kept as a [`Secret`]) and `redis_unreachable`
//! (what rate limits do while Redis is away). Connecting to Redis is `state::redis`'s business;
//! this module only checks what is written.

use toml::Spanned;

use super::env::expand_at;
use super::raw::RawState;
use crate::diag::{Diagnostics, SourceFile};
use crate::secret::Secret;

/// Where shared state lives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum StateBackend {
    /// The store file in the data directory: one gateway.
    #[default]
    Embedded,
    /// A Redis server that every replica shares.
    Redis(RedisSettings),
}

/// `[state] backend = "redis"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisSettings {
    /// `redis://[user:password@]host[:port][/db]` or `rediss://…` for TLS. Never print it:
    /// `state::redis::redact_redis_url` gives a loggable form.
    pub url: Secret,
    pub unreachable: Unreachable,
}

/// What a rate limit does when Redis cannot be reached.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Unreachable {
    /// Let the request through (and warn now and then).
    #[default]
    Open,
    /// Refuse it with 503.
    Closed,
}

/// The URL schemes the Redis client takes.
const SCHEMES: &[&str] = &["redis", "rediss", "redis+unix", "unix"];

/// Check `backend`, `redis_url` and `redis_unreachable`. `redis_url` is expanded only for the
/// Redis backend (an embedded gateway needs no `REDIS_URL` in its environment); the Redis keys
/// under another backend are reported as unused.
pub(super) fn compile_backend(
    file: &SourceFile,
    raw: Option<&RawState>,
    env: &dyn Fn(&str) -> Option<String>,
    diags: &mut Diagnostics,
) -> StateBackend {
    let Some(raw) = raw else {
        return StateBackend::Embedded;
    };
    let redis = match raw.backend.as_ref() {
        None => false,
        Some(b) => match b.get_ref().as_str() {
            "embedded" => false,
            "redis" => true,
            other => {
                diags.error_hint(
                    file,
                    b.span(),
                    format!("unknown state backend `{other}`"),
                    "use backend = \"embedded\" (one gateway) or \"redis\" (replicas sharing one \
                     Redis)",
                );
                false
            }
        },
    };
    let unreachable = raw
        .redis_unreachable
        .as_ref()
        .map_or(Unreachable::Open, |u| match u.get_ref().as_str() {
            "open" => Unreachable::Open,
            "closed" => Unreachable::Closed,
            other => {
                diags.error_hint(
                    file,
                    u.span(),
                    format!("unknown `redis_unreachable` value `{other}`"),
                    "use \"open\" (let requests through) or \"closed\" (answer 503)",
                );
                Unreachable::Open
            }
        });
    if !redis {
        for key in [&raw.redis_url, &raw.redis_unreachable]
            .into_iter()
            .flatten()
        {
            diags.warning(
                file,
                key.span(),
                "this Redis setting is unused: the state backend is `embedded`",
                Some("set backend = \"redis\" under [state] to keep state on Redis".into()),
            );
        }
        return StateBackend::Embedded;
    }
    let Some(url) = raw.redis_url.as_ref() else {
        let span = raw.backend.as_ref().map_or(0..0, Spanned::span);
        diags.error_hint(
            file,
            span,
            "backend = \"redis\" needs a `redis_url`",
            "add redis_url = \"${REDIS_URL}\" and export REDIS_URL=redis://:PASSWORD@HOST:6379/0",
        );
        return StateBackend::Embedded;
    };
    let url = expand_at(file, url, "`redis_url`", env, diags)
        .and_then(|u| check_url(file, url, u, diags));
    match url {
        Some(url) => StateBackend::Redis(RedisSettings { url, unreachable }),
        None => StateBackend::Embedded,
    }
}

/// The expanded URL, when its scheme is one the client takes. The message shows the scheme
/// only: the rest may hold a password.
fn check_url(
    file: &SourceFile,
    at: &Spanned<String>,
    url: String,
    diags: &mut Diagnostics,
) -> Option<Secret> {
    let scheme = url.split_once("://").map(|(s, _)| s);
    match scheme {
        Some(s) if SCHEMES.contains(&s) => Some(Secret::new(url)),
        _ => {
            diags.error_hint(
                file,
                at.span(),
                format!(
                    "`redis_url` is not a Redis URL ({})",
                    scheme.map_or_else(|| "no scheme".to_string(), |s| format!("scheme `{s}`"))
                ),
                "write it like redis://:PASSWORD@HOST:6379/0, or rediss://… for TLS",
            );
            None
        }
    }
}
