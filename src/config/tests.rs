//! Tests of the config loader: expansion, durations, sources of each kind, and that every
//! mistake in a file is reported in one load.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::dialect::Dialect;
use crate::secret::Secret;

fn env(v: &str) -> Option<String> {
    match v {
        "HOST" => Some("db1".into()),
        "EMPTY" => Some(String::new()),
        _ => None,
    }
}

#[test]
fn expands_variables_and_defaults() {
    assert_eq!(expand_env("S=${HOST};", &env).as_deref(), Ok("S=db1;"));
    assert_eq!(expand_env("${NOPE:-x.db}", &env).as_deref(), Ok("x.db"));
    assert_eq!(expand_env("${EMPTY:-d}", &env).as_deref(), Ok("d"));
    assert_eq!(expand_env("a$${b}$c", &env).as_deref(), Ok("a${b}$c"));
    assert_eq!(
        expand_env("${A};${HOST};${B}", &env),
        Err(vec!["A".to_string(), "B".to_string()])
    );
}

#[test]
fn durations() {
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
    assert_eq!(parse_duration("2m"), Some(Duration::from_mins(2)));
    assert_eq!(parse_duration("5"), None);
    assert_eq!(parse_duration("s"), None);
    assert_eq!(parse_duration("5h"), Some(Duration::from_hours(5)));
    assert_eq!(parse_duration("5d"), None);
    assert_eq!(
        parse_duration("99999999999999999h"),
        None,
        "overflow is refused"
    );
}

#[test]
fn redacts_passwords() {
    assert_eq!(
        redact_connection_string("Driver={X};UID=me;PWD=s3cret;Server=h"),
        "Driver={X};UID=me;PWD=***;Server=h"
    );
    assert_eq!(format!("{:?}", Secret::new("pw")), "Secret(***)");
}

#[test]
fn missing_variable_names_the_line() {
    let text = "[sources.mfg]\nkind = \"odbc\"\ndialect = \"db2i\"\nconnection_string = \"PWD=${AS400_PASSWORD}\"\n";
    let err = Config::parse(Path::new("patina.toml"), text, &env).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("patina.toml:4:21: error"), "{msg}");
    assert!(msg.contains("`AS400_PASSWORD`"), "{msg}");
    assert!(!msg.contains("PWD="), "the value is not echoed: {msg}");
}

#[test]
fn reports_several_source_errors_at_once() {
    let text = "[sources.a]\nkind = \"oracle\"\ndialect = \"x\"\nconnection_string = \"y\"\n\
                pool = { max = 0, acquire_timeout = \"soon\" }\n";
    let err = Config::parse(Path::new("p.toml"), text, &env).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("unknown kind `oracle`"), "{msg}");
    assert!(msg.contains("unknown dialect `x`"), "{msg}");
    assert!(msg.contains("`pool.max` must be between"), "{msg}");
    assert!(
        msg.contains("`pool.acquire_timeout` is not a duration"),
        "{msg}"
    );
}

#[test]
fn unknown_fields_are_errors() {
    let err = Config::parse(
        Path::new("p.toml"),
        "[server]\nlisten = \"x\"\nport = 1\n",
        &env,
    )
    .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("p.toml:3:1"), "{msg}");
    assert!(msg.contains("unknown field `port`"), "{msg}");
}

#[test]
fn defaults() {
    let text = "[sources.d]\nkind = \"odbc\"\ndialect = \"sqlite\"\nconnection_string = \"Driver={SQLite3};Database=${DB:-demo.db}\"\n";
    let c = Config::parse(Path::new("conf/p.toml"), text, &env).expect("valid");
    assert_eq!(c.listen, "127.0.0.1:8080");
    assert_eq!(c.mappings_dir, Path::new("conf/mappings"));
    let s = &c.sources["d"];
    assert_eq!(s.kind(), SourceKind::Odbc);
    assert_eq!(
        s.target.odbc_connection_string().map(Secret::expose),
        Some("Driver={SQLite3};Database=demo.db")
    );
    assert_eq!(s.pool_max, 4);
    assert_eq!(s.acquire_timeout, Duration::from_secs(2));
}

#[test]
fn sql_server_from_fields() {
    let text = "[sources.erp]\nkind = \"mssql\"\nhost = \"${HOST}\"\nport = 1444\n\
                database = \"ERP\"\nuser = \"svc\"\npassword = \"${PW:-x}\"\n\
                encrypt = \"strict\"\ntrust_ca_file = \"certs/ca.pem\"\n";
    let c = Config::parse(Path::new("conf/p.toml"), text, &env).expect("valid");
    let s = &c.sources["erp"];
    assert_eq!(s.kind(), SourceKind::Mssql);
    assert_eq!(s.dialect, Dialect::Mssql, "the dialect follows the kind");
    let t = s.target.mssql().expect("target");
    assert_eq!(t.host.as_deref(), Some("db1"));
    assert_eq!(t.port, Some(1444));
    assert_eq!(t.password.as_ref().map(Secret::expose), Some("x"));
    assert_eq!(t.encrypt, Some(Encrypt::Strict));
    assert_eq!(
        t.trust,
        Some(Trust::CaFile(PathBuf::from("conf/certs/ca.pem")))
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn sql_server_mistakes_are_reported_together() {
    let text = "[sources.erp]\nkind = \"mssql\"\ndialect = \"postgres\"\n\
                connection_string = \"Server=tcp:h,1433\"\nhost = \"h\"\nencrypt = \"yes\"\n\
                trust_ca_file = \"ca.pem\"\ntrust_server_certificate = true\n\
                [sources.old]\nkind = \"odbc\"\ndialect = \"mssql\"\nconnection_string = \"DSN=x\"\nhost = \"h\"\n\
                [sources.none]\nkind = \"mssql\"\n";
    let msg = Config::parse(Path::new("p.toml"), text, &env)
        .unwrap_err()
        .to_string();
    for want in [
        "kind `mssql` speaks dialect `mssql` only",
        "gives both `connection_string` and `host`",
        "unknown `encrypt` value `yes`",
        "contradict each other",
        "p.toml:13:1: error: source `old`: `host` is not an option of kind = \"odbc\" sources\n  \
         hint: `host` is an option of kind = \"mssql\" sources; this source is kind = \"odbc\"",
        "source `none` says neither where the server is nor how to log in",
        "with a `connection_string`, certificate trust is set in it",
    ] {
        assert!(msg.contains(want), "missing `{want}` in:\n{msg}");
    }
}

#[test]
fn sql_server_logins_come_whole_and_strings_are_not_empty() {
    let text = "[sources.a]\nkind = \"mssql\"\nhost = \"h\"\nuser = \"svc\"\n\
                [sources.b]\nkind = \"mssql\"\nhost = \"h\"\npassword = \"${PW:-x}\"\n\
                [sources.c]\nkind = \"mssql\"\nconnection_string = \"${MSSQL_URL:-}\"\n\
                [sources.d]\nkind = \"mssql\"\nconnection_string = \"${MISSING}\"\n";
    let msg = Config::parse(Path::new("p.toml"), text, &env)
        .unwrap_err()
        .to_string();
    for want in [
        "source `a`: `user` without `password`",
        "source `b`: `password` without `user`",
        "source `c`: `connection_string` is empty",
    ] {
        assert!(msg.contains(want), "missing `{want}` in:\n{msg}");
    }
    assert_eq!(
        msg.matches("`MISSING`").count(),
        1,
        "a missing variable is reported once:\n{msg}"
    );
}

#[test]
fn a_password_in_the_file_is_a_warning() {
    let text =
        "[sources.erp]\nkind = \"mssql\"\nhost = \"h\"\nuser = \"sa\"\npassword = \"hunter2\"\n";
    let c = Config::parse(Path::new("p.toml"), text, &env).expect("valid");
    let w = c
        .warnings
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(w.contains("p.toml:5:12: warning"), "{w}");
    assert!(w.contains("the password is written in the file"), "{w}");
    assert!(!w.contains("hunter2"), "{w}");
}

#[test]
fn mistakes_in_several_sections_are_reported_in_one_load() {
    let text = "[server]\nlisten = \"x\"\nport = 1\n\n\
                [sources.a]\nkind = \"odbc\"\ndialect = \"sqlite\"\nconnection_string = \"DSN=a\"\n\
                statement_timeout = \"soon\"\n\
                [sources.b]\nkind = \"odbc\"\ndialect = \"sqlite\"\nconnection_string = \"DSN=b\"\n\
                host = \"h\"\n";
    let err = Config::parse(Path::new("p.toml"), text, &env).unwrap_err();
    let found: Vec<_> = err
        .diagnostics
        .iter()
        .map(|d| (d.line, d.column, d.message.as_str()))
        .collect();
    assert_eq!(err.diagnostics.len(), 3, "{err}");
    assert_eq!((found[0].0, found[0].1), (3, 1), "{err}");
    assert!(found[0].2.starts_with("unknown field `port`"), "{err}");
    assert_eq!(
        found[1],
        (9, 21, "source `a`: `statement_timeout` is not a duration"),
        "{err}"
    );
    assert_eq!(
        found[2],
        (
            14,
            1,
            "source `b`: `host` is not an option of kind = \"odbc\" sources"
        ),
        "{err}"
    );
    let hint = err.diagnostics[1].hint.as_deref().unwrap_or_default();
    assert!(hint.contains("units: ms, s, m, h"), "{hint}");
}

#[test]
fn every_section_is_read_even_after_a_bad_one() {
    let text = "[docs]\ntitel = \"x\"\n\n[auth]\napi_keys_file = 3\n\n\
                [rate_limit]\ndefault = \"lots\"\n\n[audit]\nfile = \"a.log\"\nrotate = true\n\n\
                [extra]\nx = 1\n";
    let err = Config::parse(Path::new("p.toml"), text, &env).unwrap_err();
    let msg = err.to_string();
    for want in [
        "p.toml:2:1: error: unknown field `titel`",
        "p.toml:5:17: error: invalid type",
        "p.toml:8:11: error: `rate_limit.default` is not a rate",
        "p.toml:12:1: error: unknown field `rotate`",
        "p.toml:14:2: error: unknown section `extra`",
    ] {
        assert!(msg.contains(want), "missing `{want}` in:\n{msg}");
    }
}

#[test]
fn a_source_of_an_unknown_kind_is_still_checked() {
    let text = "[sources.a]\nkind = \"oracle\"\ndialect = \"sqlite\"\nhost = \"h\"\nflavour = 1\n\
                [sources.b]\ndialect = \"sqlite\"\nconnection_string = \"x\"\n\
                [sources.c]\nkind = \"mssql\"\nhost = \"h\"\nlisten = 1\nconnection_string = 3\n";
    let msg = Config::parse(Path::new("p.toml"), text, &env)
        .unwrap_err()
        .to_string();
    for want in [
        "p.toml:2:8: error: source `a`: unknown kind `oracle`",
        "p.toml:5:1: error: source `a`: unknown field `flavour`",
        "source `b` has no `kind`",
        "p.toml:12:1: error: source `c`: unknown field `listen`\n  hint: a kind = \"mssql\" source takes: kind, connection_string, host",
        "p.toml:13:21: error: source `c`: invalid type: integer `3`, expected a string",
    ] {
        assert!(msg.contains(want), "missing `{want}` in:\n{msg}");
    }
    assert!(
        !msg.contains("`host`"),
        "either kind may take `host`:\n{msg}"
    );
}

#[test]
fn syntax_errors_stop_the_load_with_their_place() {
    let err = Config::parse(Path::new("p.toml"), "[server\nlisten = \n", &env).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("p.toml:1:"), "{msg}");
    assert!(!err.diagnostics.is_empty());
}

#[test]
fn the_option_lists_match_the_raw_structs() {
    use super::raw::{COMMON_OPTIONS, MSSQL_OPTIONS, ODBC_OPTIONS, RawCommon, RawMssql, RawOdbc};
    fn known<T: serde::de::DeserializeOwned>(option: &str) -> bool {
        match toml::from_str::<T>(&format!("{option} = []")) {
            Ok(_) => true,
            Err(e) => !e.message().contains("unknown field"),
        }
    }
    for o in COMMON_OPTIONS {
        assert!(known::<RawCommon>(o), "{o}");
    }
    for o in ODBC_OPTIONS {
        assert!(known::<RawOdbc>(o), "{o}");
    }
    for o in MSSQL_OPTIONS {
        assert!(known::<RawMssql>(o), "{o}");
    }
    assert!(!known::<RawMssql>("dialect"), "the check can fail");
}

fn state_env(v: &str) -> Option<String> {
    match v {
        "REDIS_URL" => Some("rediss://:s3cret@cache.internal:6380/2".into()),
        _ => None,
    }
}

#[test]
fn the_state_backend_is_embedded_by_default() {
    let c = Config::parse(Path::new("p.toml"), "[state]\ndir = \"d\"\n", &state_env).expect("ok");
    assert_eq!(c.state.backend, StateBackend::Embedded);
    let c = Config::parse(Path::new("p.toml"), "", &state_env).expect("ok");
    assert_eq!(c.state.backend, StateBackend::Embedded);
}

#[test]
fn redis_backend_reads_the_url_from_the_environment() {
    let text = "[state]\nbackend = \"redis\"\nredis_url = \"${REDIS_URL}\"\nredis_unreachable = \"closed\"\n";
    let c = Config::parse(Path::new("p.toml"), text, &state_env).expect("valid");
    let StateBackend::Redis(r) = &c.state.backend else {
        panic!("{:?}", c.state.backend)
    };
    assert_eq!(r.url.expose(), "rediss://:s3cret@cache.internal:6380/2");
    assert_eq!(r.unreachable, Unreachable::Closed);
    assert!(
        !format!("{c:?}").contains("s3cret"),
        "the password stays hidden"
    );
    let text = "[state]\nbackend = \"redis\"\nredis_url = \"redis://127.0.0.1/\"\n";
    let c = Config::parse(Path::new("p.toml"), text, &state_env).expect("valid");
    assert!(
        matches!(&c.state.backend, StateBackend::Redis(r) if r.unreachable == Unreachable::Open),
        "fail open is the default"
    );
}

#[test]
fn redis_mistakes_are_reported_without_the_password() {
    let text = "[state]\nbackend = \"redis\"\nredis_url = \"http://:pw@h/\"\nredis_unreachable = \"maybe\"\n";
    let msg = Config::parse(Path::new("p.toml"), text, &state_env)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("p.toml:3:13: error: `redis_url` is not a Redis URL (scheme `http`)"),
        "{msg}"
    );
    assert!(
        msg.contains("unknown `redis_unreachable` value `maybe`"),
        "{msg}"
    );
    assert!(!msg.contains("pw@"), "{msg}");
    for (text, want) in [
        ("[state]\nbackend = \"redis\"\n", "needs a `redis_url`"),
        (
            "[state]\nbackend = \"redis\"\nredis_url = \"${NOPE}\"\n",
            "`redis_url`: environment variable `NOPE` not set",
        ),
        (
            "[state]\nbackend = \"memcached\"\n",
            "unknown state backend `memcached`",
        ),
        ("[state]\nredis_port = 6379\n", "unknown field `redis_port`"),
    ] {
        let msg = Config::parse(Path::new("p.toml"), text, &state_env)
            .unwrap_err()
            .to_string();
        assert!(msg.contains(want), "missing `{want}` in:\n{msg}");
    }
}

#[test]
fn redis_keys_without_the_redis_backend_are_warned_about_not_expanded() {
    let text = "[state]\nredis_url = \"${NOPE}\"\n";
    let c = Config::parse(Path::new("p.toml"), text, &state_env).expect("valid");
    assert_eq!(c.state.backend, StateBackend::Embedded);
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(c.warnings[0].message.contains("unused"), "{:?}", c.warnings);
}

/// `${VAR}` works in every setting a deployment varies, not only in secrets: the JWT issuer,
/// audience and JWKS URL, and the listen address. A variable not set is an error at its line.
#[test]
fn auth_and_listen_settings_read_the_environment() {
    let text = "[server]\nlisten = \"0.0.0.0:${PORT:-8080}\"\n\
                [auth.jwt]\nissuer = \"https://${HOST}/\"\naudience = \"${AUD:-patina}\"\n\
                jwks_url = \"https://${HOST}/jwks\"\n";
    let c = Config::parse(Path::new("p.toml"), text, &env).expect("valid");
    assert_eq!(c.listen, "0.0.0.0:8080");
    let jwt = c.auth.jwt.expect("jwt");
    assert_eq!(jwt.issuer.as_deref(), Some("https://db1/"));
    assert_eq!(jwt.audience.as_deref(), Some("patina"));
    assert_eq!(jwt.jwks_url.as_deref(), Some("https://db1/jwks"));

    let text = "[server]\nlisten = \"${LISTEN}\"\n[auth.jwt]\nissuer = \"${ISSUER}\"\n\
                jwks_url = \"${JWKS}\"\n";
    let msg = Config::parse(Path::new("p.toml"), text, &env)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("p.toml:2:10: error: `server.listen`: environment variable `LISTEN` not set"),
        "{msg}"
    );
    assert!(
        msg.contains(
            "p.toml:4:10: error: `auth.jwt.issuer`: environment variable `ISSUER` not set"
        ),
        "{msg}"
    );
    assert!(
        msg.contains("`auth.jwt.jwks_url`: environment variable `JWKS` not set"),
        "{msg}"
    );
    assert!(
        !msg.contains("https://"),
        "no URL complaint for a value not known: {msg}"
    );

    // An empty default is no requirement (not a required empty `iss`).
    let text =
        "[auth.jwt]\nissuer = \"${NOPE:-}\"\nhs256_secret = \"0123456789abcdef0123456789abcdef\"\n";
    let c = Config::parse(Path::new("p.toml"), text, &env).expect("valid");
    assert_eq!(c.auth.jwt.expect("jwt").issuer, None);
}
