//! Authentication, authorization, rate limits, claim-bound parameters, CORS and the audit log,
//! against the real gateway (SQLite demo database).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use base64::Engine as _;
use common::{ALL_SCOPES, Gateway, Options, SECRET, patina, token};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn claims(extra: &Value) -> Value {
    let mut c = json!({"sub": "eve", "iss": "patina-test", "aud": "patina",
                       "exp": now() + 600, "scope": ALL_SCOPES});
    for (k, v) in extra.as_object().expect("object") {
        if v.is_null() {
            c.as_object_mut().expect("object").remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

fn hs256(secret: &str, c: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        c,
        &EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("sign")
}

fn b64(v: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v)
}

/// `openssl` makes a key pair in `dir`; returns (private PEM, public PEM) paths.
fn keypair(dir: &Path, name: &str, algorithm: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let private = dir.join(format!("{name}.key"));
    let public = dir.join(format!("{name}.pub"));
    let mut cmd = Command::new("openssl");
    cmd.args(["genpkey", "-algorithm", algorithm]);
    if algorithm == "RSA" {
        cmd.args(["-pkeyopt", "rsa_keygen_bits:2048"]);
    }
    let ok = cmd
        .arg("-out")
        .arg(&private)
        .output()
        .expect("openssl runs");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let ok = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .output()
        .expect("openssl runs");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    (private, public)
}

fn demo_with(config_extra: &str) -> Gateway {
    Gateway::start(
        &common::sqlite(),
        &Options {
            config_extra,
            ..Options::default()
        },
    )
}

fn bearer(t: &str) -> String {
    format!("Bearer {t}")
}

#[test]
fn jwt_attacks_and_mistakes_are_401_and_say_nothing_more() {
    let gw = Gateway::demo(&common::sqlite());
    let good = hs256(SECRET, &claims(&json!({})));
    assert_eq!(
        gw.get_with("/v1/jobs/100001", &[("Authorization", &bearer(&good))])
            .status,
        200
    );

    let (p, s) = good.rsplit_once('.').expect("jwt");
    let (h, _) = p.split_once('.').expect("jwt");
    let tampered_payload = b64(serde_json::to_string(&claims(&json!({"sub": "admin"})))
        .expect("json")
        .as_bytes());
    let none_header = b64(br#"{"alg":"none","typ":"JWT"}"#);
    let payload = b64(serde_json::to_string(&claims(&json!({})))
        .expect("json")
        .as_bytes());
    let cases: Vec<(&str, String)> = vec![
        (
            "expired",
            hs256(SECRET, &claims(&json!({"exp": now() - 120}))),
        ),
        (
            "not yet valid",
            hs256(SECRET, &claims(&json!({"nbf": now() + 120}))),
        ),
        (
            "wrong issuer",
            hs256(SECRET, &claims(&json!({"iss": "someone-else"}))),
        ),
        ("no issuer", hs256(SECRET, &claims(&json!({"iss": null})))),
        (
            "wrong audience",
            hs256(SECRET, &claims(&json!({"aud": "other-api"}))),
        ),
        ("no expiry", hs256(SECRET, &claims(&json!({"exp": null})))),
        (
            "bad signature",
            hs256("another-secret-of-at-least-32-bytes!!", &claims(&json!({}))),
        ),
        ("alg none", format!("{none_header}.{payload}.")),
        (
            "alg none, signature kept",
            format!("{none_header}.{payload}.{s}"),
        ),
        ("tampered payload", format!("{h}.{tampered_payload}.{s}")),
        ("garbage", "not-a-token".to_string()),
        ("empty", String::new()),
    ];
    let mut bodies = Vec::new();
    for (what, t) in &cases {
        let r = gw.get_with("/v1/jobs/100001", &[("Authorization", &bearer(t))]);
        let body = r.problem(401, "unauthorized");
        let challenge = r.header("www-authenticate").unwrap_or_default().to_string();
        assert!(
            challenge.starts_with("Bearer realm=\"patina\""),
            "{what}: {challenge}"
        );
        assert!(
            !r.text.to_lowercase().contains("expired") && !r.text.contains("signature"),
            "{what}: {}",
            r.text
        );
        bodies.push(body["detail"].clone());
    }
    bodies.dedup();
    assert_eq!(bodies.len(), 1, "every failure reads the same: {bodies:?}");
    // Other schemes are refused too.
    gw.get_with(
        "/v1/jobs/100001",
        &[("Authorization", "Basic dXNlcjpwYXNz")],
    )
    .problem(401, "unauthorized");
    // No credentials at all.
    let r = gw.anonymous("/v1/jobs/100001");
    r.problem(401, "unauthorized");
    assert!(r.header("www-authenticate").is_some());
}

#[test]
fn missing_scope_is_403() {
    let gw = Gateway::demo(&common::sqlite());
    let t = token("alice", "jobs:read", json!({}));
    assert_eq!(
        gw.get_with("/v1/jobs/100001", &[("Authorization", &bearer(&t))])
            .status,
        200
    );
    let r = gw.get_with("/v1/customers/1001", &[("Authorization", &bearer(&t))]);
    let p = r.problem(403, "forbidden");
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|d| d.contains("customers:read"))
    );
    assert!(
        r.header("www-authenticate")
            .is_some_and(|h| h.contains("insufficient_scope"))
    );
    // A route needing two scopes wants both.
    let r = gw.get_with("/v1/customers/1001/jobs", &[("Authorization", &bearer(&t))]);
    r.problem(403, "forbidden");
}

#[test]
fn public_key_tokens_and_the_hmac_confusion_attack() {
    let dir = tempfile::tempdir().expect("dir");
    let (private, public) = keypair(dir.path(), "idp", "RSA");
    let extra = format!(
        "[auth.jwt]\npublic_key_file = \"{}\"\npublic_key_algorithm = \"RS256\"\nissuer = \"patina-test\"\naudience = \"patina\"\n",
        public.display()
    );
    // A gateway that trusts only the RSA key.
    let cfg_dir = tempfile::tempdir().expect("dir");
    let gw = common::demo_from_config(cfg_dir.path(), "", &format!("[auth]\n{extra}"));
    let pem = std::fs::read(&private).expect("private key");
    let rs = encode(
        &Header::new(Algorithm::RS256),
        &claims(&json!({})),
        &EncodingKey::from_rsa_pem(&pem).expect("rsa key"),
    )
    .expect("sign");
    let r = gw.get_with("/v1/jobs/100001", &[("Authorization", &bearer(&rs))]);
    assert_eq!(r.status, 200, "{}", r.text);
    // HS256 "signed" with the public key's bytes: the classic algorithm confusion.
    let public_pem = std::fs::read_to_string(&public).expect("public key");
    let forged = hs256(&public_pem, &claims(&json!({})));
    gw.get_with("/v1/jobs/100001", &[("Authorization", &bearer(&forged))])
        .problem(401, "unauthorized");
    // RS256 signed by a different key.
    let (other, _) = keypair(dir.path(), "other", "RSA");
    let wrong = encode(
        &Header::new(Algorithm::RS256),
        &claims(&json!({})),
        &EncodingKey::from_rsa_pem(&std::fs::read(other).expect("key")).expect("rsa"),
    )
    .expect("sign");
    gw.get_with("/v1/jobs/100001", &[("Authorization", &bearer(&wrong))])
        .problem(401, "unauthorized");
}

/// A token signed with an Ed25519 key, naming `kid`.
fn sign_eddsa(key: &EncodingKey, kid: &str) -> String {
    let mut h = Header::new(Algorithm::EdDSA);
    h.kid = Some(kid.into());
    encode(&h, &claims(&json!({})), key).expect("sign")
}

fn jwk_of(private: &Path, kid: &str) -> (EncodingKey, Value) {
    let key = EncodingKey::from_ed_pem(&std::fs::read(private).expect("key")).expect("ed key");
    let mut jwk = serde_json::to_value(
        jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::EdDSA).expect("jwk"),
    )
    .expect("json");
    jwk["kid"] = json!(kid);
    (key, jwk)
}

#[test]
fn jwks_keys_rotate_without_a_restart() {
    let dir = tempfile::tempdir().expect("dir");
    let (k1, _) = keypair(dir.path(), "k1", "ED25519");
    let (k2, _) = keypair(dir.path(), "k2", "ED25519");
    let (key1, jwk1) = jwk_of(&k1, "k1");
    let (key2, jwk2) = jwk_of(&k2, "k2");
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, json!({"keys": [jwk1]}).to_string()).expect("jwks");
    let gw = common::demo_from_config(
        dir.path(),
        "",
        &format!(
            "[auth.jwt]\njwks_file = \"{}\"\nissuer = \"patina-test\"\naudience = \"patina\"\n",
            jwks.display()
        ),
    );
    let sign = sign_eddsa;
    assert_eq!(
        gw.get_with(
            "/v1/jobs/100001",
            &[("Authorization", &bearer(&sign(&key1, "k1")))]
        )
        .status,
        200
    );
    // Unknown kid.
    gw.get_with(
        "/v1/jobs/100001",
        &[("Authorization", &bearer(&sign(&key1, "nope")))],
    )
    .problem(401, "unauthorized");
    // A kid whose key says otherwise.
    gw.get_with(
        "/v1/jobs/100001",
        &[("Authorization", &bearer(&sign(&key2, "k1")))],
    )
    .problem(401, "unauthorized");
    // The identity provider publishes k2, then signs with it: the unknown kid makes the
    // gateway re-read the key set. ("nope" above caused a reload too; such reloads are at
    // most one per 10 s, so wait that out first.)
    std::fs::write(&jwks, json!({"keys": [jwk1.clone(), jwk2]}).to_string()).expect("jwks");
    std::thread::sleep(Duration::from_secs(11));
    let r = gw.get_with(
        "/v1/jobs/100001",
        &[("Authorization", &bearer(&sign(&key2, "k2")))],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        gw.get_with(
            "/v1/jobs/100001",
            &[("Authorization", &bearer(&sign(&key1, "k1")))]
        )
        .status,
        200
    );
}

#[test]
fn api_keys_are_minted_used_scoped_and_revoked_without_restart() {
    let gw = Gateway::demo(&common::sqlite());
    let ran = patina(
        &[
            "keys",
            "new",
            "--name",
            "bi-dashboard",
            "--scopes",
            "jobs:read",
            "--rate",
            "100/minute",
        ],
        &gw.dir,
    );
    assert!(ran.ok(), "{}", ran.err);
    let key = ran.out;
    assert!(key.starts_with("pat_"), "{key}");
    let stored = std::fs::read_to_string(gw.dir.join("keys.toml")).expect("keys file");
    assert!(!stored.contains(&key), "only the hash is stored");
    let id = &key[4..12];
    let r = gw.get_with("/v1/jobs/100001", &[("X-API-Key", &key)]);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("ratelimit-limit"),
        Some("100"),
        "the key's own rate"
    );
    gw.get_with("/v1/customers/1001", &[("X-API-Key", &key)])
        .problem(403, "forbidden");
    let list = patina(&["keys", "list"], &gw.dir).out;
    assert!(
        list.contains("bi-dashboard") && list.contains("active") && !list.contains(&key[13..]),
        "{list}"
    );
    let ran = patina(&["keys", "revoke", id], &gw.dir);
    assert!(ran.ok(), "{}", ran.err);
    std::thread::sleep(Duration::from_millis(700));
    let r = gw.get_with("/v1/jobs/100001", &[("X-API-Key", &key)]);
    r.problem(401, "unauthorized");
    assert!(
        r.headers
            .get_all("www-authenticate")
            .iter()
            .any(|h| h.to_str().is_ok_and(|h| h.starts_with("ApiKey"))),
        "a challenge for each scheme"
    );
    // Expired keys and made-up keys.
    let (k, mut stored) = patina::auth::keys::mint(
        "old",
        vec!["jobs:read".into()],
        Some("2001-01-01".into()),
        None,
    );
    stored
        .claims
        .insert("customer_id".into(), toml::Value::Integer(1001));
    let mut file = patina::auth::keys::KeysFile::read(&gw.dir.join("keys.toml")).expect("read");
    file.keys.push(stored);
    file.write(&gw.dir.join("keys.toml")).expect("write");
    std::thread::sleep(Duration::from_millis(700));
    gw.get_with("/v1/jobs/100001", &[("X-API-Key", &k)])
        .problem(401, "unauthorized");
    gw.get_with(
        "/v1/jobs/100001",
        &[(
            "X-API-Key",
            "pat_00000000_0000000000000000000000000000000000000000",
        )],
    )
    .problem(401, "unauthorized");
}

#[test]
fn rate_limit_allows_exactly_n_per_identity() {
    let gw = demo_with("[rate_limit]\ndefault = \"3/minute\"\n");
    let alice = bearer(&token("alice", ALL_SCOPES, json!({})));
    let bob = bearer(&token("bob", ALL_SCOPES, json!({})));
    for remaining in ["2", "1", "0"] {
        let r = gw.get_with("/v1/jobs/100001", &[("Authorization", &alice)]);
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("ratelimit-limit"), Some("3"));
        assert_eq!(r.header("ratelimit-remaining"), Some(remaining));
        assert!(r.header("ratelimit-reset").is_some());
    }
    let r = gw.get_with("/v1/jobs/100001", &[("Authorization", &alice)]);
    r.problem(429, "rate-limited");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("seconds");
    assert!((1..=20).contains(&retry), "{retry}");
    assert_eq!(r.header("ratelimit-remaining"), Some("0"));
    assert_eq!(r.header("ratelimit-limit"), Some("3"));
    // Bob has his own bucket.
    assert_eq!(
        gw.get_with("/v1/jobs/100001", &[("Authorization", &bob)])
            .status,
        200
    );
}

#[test]
fn claim_bound_parameters_cannot_be_overridden() {
    let gw = Gateway::demo(&common::sqlite());
    let portal = |claims: Value| bearer(&token("acme-portal", "portal", claims));
    let r = gw.get_with(
        "/v1/my/jobs",
        &[("Authorization", &portal(json!({"customer_id": 1001})))],
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let jobs: Vec<i64> = r.json()["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|j| j["job_number"].as_i64().expect("job"))
        .collect();
    assert_eq!(jobs, [100_003, 100_001], "only customer 1001's jobs");
    // Not from the query string.
    let r = gw.get_with(
        "/v1/my/jobs?customer=1002",
        &[("Authorization", &portal(json!({"customer_id": 1001})))],
    );
    let p = r.problem(400, "invalid-parameters");
    assert_eq!(p["errors"][0]["name"], "customer");
    // A token without the claim (or with a malformed one) gets nothing.
    gw.get_with("/v1/my/jobs", &[("Authorization", &portal(json!({})))])
        .problem(403, "forbidden");
    gw.get_with(
        "/v1/my/jobs",
        &[("Authorization", &portal(json!({"customer_id": "1 OR 1=1"})))],
    )
    .problem(403, "forbidden");
    let doc = gw.get("/openapi/v1.json").json();
    let params = &doc["paths"]["/v1/my/jobs"]["get"]["parameters"];
    let names: Vec<&str> = params
        .as_array()
        .map(|a| a.iter().filter_map(|p| p["name"].as_str()).collect())
        .unwrap_or_default();
    assert!(
        !names.contains(&"customer"),
        "claim parameters are not request parameters: {params}"
    );
}

#[test]
fn audit_log_records_identity_not_secrets() {
    let dir = tempfile::tempdir().expect("dir");
    let log = dir.path().join("audit.log");
    let gw = demo_with(&format!("[audit]\nfile = \"{}\"\n", log.display()));
    let t = token("auditor", "jobs:read", json!({}));
    assert_eq!(
        gw.get_with("/v1/jobs/100001?x=1", &[("Authorization", &bearer(&t))])
            .status,
        400
    );
    assert_eq!(
        gw.get_with("/v1/jobs/100001", &[("Authorization", &bearer(&t))])
            .status,
        200
    );
    gw.anonymous("/v1/jobs/100002").problem(401, "unauthorized");
    std::thread::sleep(Duration::from_millis(100));
    let text = std::fs::read_to_string(&log).expect("audit log");
    assert!(!text.contains(&t) && !text.contains("100001"), "{text}");
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0]["status"], 400);
    assert_eq!(lines[1]["identity"], "sub:auditor");
    assert_eq!(lines[1]["route"], "getJob");
    assert_eq!(lines[1]["rows"], 1);
    assert_eq!(lines[2]["identity"], "anonymous");
    assert_eq!(lines[2]["status"], 401);
    assert_ne!(lines[1]["params"], lines[2]["params"]);
    assert!(lines[1]["request_id"].is_string() && lines[1]["ms"].is_number());
}

#[test]
fn cors_allow_list_and_security_headers() {
    let dir = tempfile::tempdir().expect("dir");
    let gw = common::demo_from_config(
        dir.path(),
        "cors_origins = [\"https://dash.example\"]",
        &common::auth_section(&dir.path().join("keys.toml")),
    );
    let r = gw.request(
        reqwest::Method::GET,
        "/v1/jobs/100001",
        &[("Origin", "https://dash.example")],
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://dash.example")
    );
    assert!(
        r.header("access-control-expose-headers")
            .is_some_and(|h| h.contains("RateLimit-Remaining"))
    );
    let r = gw.request(
        reqwest::Method::GET,
        "/v1/jobs/100001",
        &[("Origin", "https://evil.example")],
    );
    assert!(r.header("access-control-allow-origin").is_none());
    let r = gw.raw(
        reqwest::Method::OPTIONS,
        "/v1/jobs/100001",
        &[
            ("Origin", "https://dash.example"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "authorization"),
        ],
    );
    assert_eq!(r.status, 204);
    assert!(
        r.header("access-control-allow-headers")
            .is_some_and(|h| h.contains("Authorization"))
    );
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://dash.example")
    );
    let r = gw.raw(
        reqwest::Method::OPTIONS,
        "/v1/jobs/100001",
        &[
            ("Origin", "https://evil.example"),
            ("Access-Control-Request-Method", "GET"),
        ],
    );
    let p = r.problem(403, "origin-not-allowed");
    assert!(
        p["detail"]
            .as_str()
            .is_some_and(|d| d.contains("cors_origins")),
        "{}",
        r.text
    );
    let r = gw.get("/v1/jobs/100001");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert!(
        r.header("content-security-policy")
            .is_some_and(|c| c.contains("default-src 'none'"))
    );
}

#[test]
fn token_command_mints_usable_development_tokens() {
    let gw = Gateway::demo(&common::sqlite());
    let ran = patina(
        &[
            "token",
            "--sub",
            "dev",
            "--scopes",
            "portal",
            "--claim",
            "customer_id=1002",
            "--ttl",
            "10m",
        ],
        &gw.dir,
    );
    assert!(ran.ok(), "{}", ran.err);
    let r = gw.get_with("/v1/my/jobs", &[("Authorization", &bearer(&ran.out))]);
    assert_eq!(r.status, 200, "{}", r.text);
    let rows = r.json()["data"].as_array().expect("data").clone();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["job_number"], 100_002);
}

/// With `[auth] scopes_claim = "scp"`, `patina token` puts the scopes where the gateway reads
/// them: its token opens a scoped route.
#[test]
fn token_command_writes_the_configured_scopes_claim() {
    // The demo gateway's config, with scopes_claim, in a folder of its own (its own state).
    let demo = Gateway::demo(&common::sqlite());
    let text = std::fs::read_to_string(demo.dir.join("patina.toml")).expect("config");
    let dir = tempfile::tempdir().expect("dir");
    let config = dir.path().join("patina.toml");
    std::fs::write(
        &config,
        text.replace("[auth]\n", "[auth]\nscopes_claim = \"scp\"\n"),
    )
    .expect("config");
    let gw = Gateway::from_config(&config);
    let ran = patina(
        &["token", "--scopes", "portal", "--claim", "customer_id=1002"],
        &gw.dir,
    );
    assert!(ran.ok(), "{}", ran.err);
    let r = gw.get_with("/v1/my/jobs", &[("Authorization", &bearer(&ran.out))]);
    assert_eq!(r.status, 200, "{}", r.text);
}

/// Serve whatever `body` holds at any path, over plain HTTP on loopback.
fn tiny_server(body: std::sync::Arc<std::sync::Mutex<String>>) -> String {
    use std::io::{Read as _, Write as _};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let b = body.lock().expect("lock").clone();
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{b}",
                b.len()
            );
        }
    });
    format!("http://{addr}/.well-known/jwks.json")
}

#[test]
fn jwks_from_a_url_rotates_on_an_unknown_kid() {
    let dir = tempfile::tempdir().expect("dir");
    let (k1, _) = keypair(dir.path(), "k1", "ED25519");
    let (k2, _) = keypair(dir.path(), "k2", "ED25519");
    let (key1, jwk1) = jwk_of(&k1, "k1");
    let (key2, jwk2) = jwk_of(&k2, "k2");
    let published = std::sync::Arc::new(std::sync::Mutex::new(
        json!({"keys": [jwk1.clone()]}).to_string(),
    ));
    let url = tiny_server(std::sync::Arc::clone(&published));
    let gw = common::demo_from_config(
        dir.path(),
        "",
        &format!(
            "[auth.jwt]\njwks_url = \"{url}\"\nissuer = \"patina-test\"\naudience = \"patina\"\n"
        ),
    );
    let sign = |key: &EncodingKey, kid: &str| bearer(&sign_eddsa(key, kid));
    let r = gw.get_with("/v1/jobs/100001", &[("Authorization", &sign(&key1, "k1"))]);
    assert_eq!(r.status, 200, "fetched on first use: {}", r.text);
    // The provider rotates: publishes k2 and signs with it.
    *published.lock().expect("lock") = json!({"keys": [jwk1, jwk2]}).to_string();
    let r = gw.get_with("/v1/jobs/100001", &[("Authorization", &sign(&key2, "k2"))]);
    assert_eq!(
        r.status, 200,
        "the unknown kid made the gateway fetch again: {}",
        r.text
    );
    // A made-up kid right after is refused without another fetch being needed.
    gw.get_with("/v1/jobs/100001", &[("Authorization", &sign(&key2, "k9"))])
        .problem(401, "unauthorized");
}

#[test]
fn tls_is_terminated_with_the_configured_certificate() {
    let dir = tempfile::tempdir().expect("dir");
    common::ca_and_server_certificate(dir.path());
    let gw = common::demo_from_config(
        dir.path(),
        "tls = { cert_file = \"cert.pem\", key_file = \"key.pem\" }",
        &common::auth_section(&dir.path().join("keys.toml")),
    );
    let https = gw.base.replace("http://", "https://");
    let client = reqwest::blocking::Client::builder()
        .add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(dir.path().join("ca.pem")).expect("ca"))
                .expect("pem"),
        )
        .build()
        .expect("client");
    let t = bearer(&token("tls", ALL_SCOPES, json!({})));
    let r = client
        .get(format!("{https}/v1/jobs/100001"))
        .header("Authorization", &t)
        .send()
        .expect("https request");
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().get("strict-transport-security").is_some());
    // Plain HTTP to the TLS port gets no API response.
    let plain = reqwest::blocking::Client::new()
        .get(format!("{}/healthz", gw.base))
        .timeout(Duration::from_secs(5))
        .send();
    assert!(plain.is_err() || plain.is_ok_and(|r| r.status().as_u16() != 200));
}
