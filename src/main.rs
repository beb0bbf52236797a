//! The `patina` command line: `serve`, `check`, `openapi`, `keys`, `token`, `dlq` and
//! `dedup-table`. Parses arguments
//! and prints; what each command does lives in the library (`serve` is [`patina::app::App`]).

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use patina::app;
use patina::config::Config;
use patina::diag::{Diagnostic, Severity};

#[derive(Parser, Debug)]
#[command(
    name = "patina",
    version,
    about = "A REST/JSON gateway in front of legacy databases"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum KeysAction {
    /// Create a key; it is printed once and never stored.
    New {
        /// Who holds it, e.g. bi-dashboard.
        #[arg(long)]
        name: String,
        /// Scopes, comma- or space-separated.
        #[arg(long, default_value = "")]
        scopes: String,
        /// Last valid day, YYYY-MM-DD.
        #[arg(long)]
        expires: Option<String>,
        /// Rate limit for this key, e.g. 60/minute.
        #[arg(long)]
        rate: Option<String>,
    },
    /// List keys (never the keys themselves).
    List,
    /// Revoke a key by id; takes effect without a restart.
    Revoke { id: String },
}

#[derive(Subcommand, Debug)]
enum DlqCmd {
    /// List the dead letters (of one route).
    List {
        #[arg(long)]
        route: Option<String>,
    },
    /// Show one delivery: its request, every attempt and its error.
    Show { id: String },
    /// Put dead letters back in the queue, decoded again under the current mappings.
    Replay {
        ids: Vec<String>,
        /// Every dead letter of `--route`.
        #[arg(long, requires = "route")]
        all: bool,
        #[arg(long)]
        route: Option<String>,
    },
    /// Forget dead letters for good.
    Drop {
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway.
    Serve {
        /// The gateway config file.
        #[arg(long, default_value = "patina.toml", env = "PATINA_CONFIG")]
        config: PathBuf,
        /// Listen here instead of the config's `[server] listen`.
        #[arg(long)]
        listen: Option<String>,
        /// Log format: text or json.
        #[arg(long, default_value = "text", env = "PATINA_LOG_FORMAT")]
        log_format: String,
    },
    /// Write the OpenAPI document of every API version to DIR/<version>.json.
    Openapi {
        #[arg(long, default_value = "patina.toml", env = "PATINA_CONFIG")]
        config: PathBuf,
        #[arg(long, default_value = "openapi")]
        out: PathBuf,
        /// Describe every route on its database first, as the running gateway does: columns
        /// the mappings leave untyped or unnamed are documented as served, row schemas closed.
        #[arg(long)]
        db: bool,
    },
    /// Manage API keys: only their hashes are stored, in the config's `auth.api_keys_file`.
    Keys {
        #[arg(
            long,
            default_value = "patina.toml",
            env = "PATINA_CONFIG",
            global = true
        )]
        config: PathBuf,
        #[command(subcommand)]
        action: KeysAction,
    },
    /// Mint a development JWT signed with the config's `auth.jwt.hs256_secret` (demo use).
    Token {
        #[arg(long, default_value = "patina.toml", env = "PATINA_CONFIG")]
        config: PathBuf,
        /// The token's subject.
        #[arg(long, default_value = "dev")]
        sub: String,
        /// Scopes, comma- or space-separated.
        #[arg(long, default_value = "")]
        scopes: String,
        /// Extra claims, NAME=VALUE (numbers stay numbers); repeatable.
        #[arg(long = "claim")]
        claims: Vec<String>,
        /// Lifetime, e.g. 30m, 8h (default 1h).
        #[arg(long, default_value = "1h")]
        ttl: String,
    },
    /// The dead-letter queue of queued writes (safe while the gateway runs).
    Dlq {
        #[arg(
            long,
            default_value = "patina.toml",
            env = "PATINA_CONFIG",
            global = true
        )]
        config: PathBuf,
        #[command(subcommand)]
        action: DlqCmd,
    },
    /// Print the statement that creates the dedup table of every queued route (or of one
    /// table in one dialect), to run on the target database before the route goes live.
    DedupTable {
        #[arg(long, default_value = "patina.toml", env = "PATINA_CONFIG")]
        config: PathBuf,
        /// With `--table`: db2i, mssql, postgres or sqlite, without reading the config.
        #[arg(long, requires = "table")]
        dialect: Option<String>,
        #[arg(long, requires = "dialect")]
        table: Option<String>,
    },
    /// Read routes' data through their codecs and report the stored values that do not
    /// decode: exit 1 when any fails its route (on_invalid = "error"), 2 when a route could not
    /// be scanned, else 0.
    Scan {
        #[arg(long, default_value = "patina.toml", env = "PATINA_CONFIG")]
        config: PathBuf,
        /// The route to scan (repeatable).
        #[arg(long = "route", required_unless_present = "all")]
        routes: Vec<String>,
        /// Scan every read route.
        #[arg(long, conflicts_with = "routes")]
        all: bool,
        /// Read at most this many rows per route.
        #[arg(long)]
        limit: Option<usize>,
        /// A parameter's value, NAME=VALUE (repeatable); optional parameters not given are
        /// unset, so their filters let every row through.
        #[arg(long = "param")]
        params: Vec<String>,
        /// Cancel a route's statement after this long.
        #[arg(long, default_value = "1h")]
        timeout: String,
        /// text or json.
        #[arg(long, default_value = "text")]
        format: String,
    },
    /// Print a mapping file for a table (or every table of a schema, or one SELECT) from what
    /// its database says: columns and codecs, the key, a list and a by-key route.
    Introspect {
        #[arg(long, default_value = "patina.toml", env = "PATINA_CONFIG")]
        config: PathBuf,
        /// The source (a `[sources.NAME]` of the config) to read.
        #[arg(long)]
        source: String,
        /// A table, `LIB.FILE` or `FILE`.
        #[arg(long, required_unless_present_any = ["schema", "sql"], conflicts_with_all = ["schema", "sql"])]
        table: Option<String>,
        /// Every table of this schema (library).
        #[arg(long, conflicts_with = "sql")]
        schema: Option<String>,
        /// One SELECT statement: a list route over it.
        #[arg(long)]
        sql: Option<String>,
        /// Read the distinct values of one- and two-letter CHAR columns (a `codes` stub, or a
        /// Y/N flag) and of numbers named like dates (CYYMMDD or YYYYMMDD): one GROUP BY per
        /// such column over the whole table.
        #[arg(long)]
        sample: bool,
        /// The resource's name (`--name job` → /jobs, listJobs, getJob) instead of one made
        /// from the table's.
        #[arg(long)]
        name: Option<String>,
        /// More abbreviations for JSON names: a TOML file of `ABBR = "word"` lines.
        #[arg(long)]
        names: Option<PathBuf>,
        /// The `#:schema` line's target, relative to where the file will be.
        #[arg(long, default_value = "../../schemas/mapping.schema.json")]
        schema_path: String,
    },
    /// Write the editor schemas (JSON Schema) of mapping files and of patina.toml to
    /// DIR/mapping.schema.json and DIR/config.schema.json.
    Schema {
        #[arg(long, default_value = "schemas")]
        out: PathBuf,
    },
    /// The migration bridge: how well shadow answers agree with the served ones.
    Bridge {
        #[arg(
            long,
            default_value = "patina.toml",
            env = "PATINA_CONFIG",
            global = true
        )]
        config: PathBuf,
        #[command(subcommand)]
        action: BridgeCmd,
    },
    /// Check the config and every mapping file: exit 0 when clean, 1 with warnings only, 2
    /// with an error. An unset `${VAR}` is a warning here (and an error for `serve`).
    Check {
        #[arg(long, default_value = "patina.toml", env = "PATINA_CONFIG")]
        config: PathBuf,
        /// Also prepare every statement against its database and compare it with the mapping.
        #[arg(long)]
        db: bool,
        /// text (stderr), json or github (workflow annotations), on stdout.
        #[arg(long, default_value = "text")]
        format: String,
        /// Cut-over guard: refuse every route with a `shadow` whose answers agreed less than
        /// this share (e.g. 0.99) over `--agreement-window`, per the bridge log.
        #[arg(long)]
        min_agreement: Option<f64>,
        /// The window of `--min-agreement`.
        #[arg(long, default_value = "24h", requires = "min_agreement")]
        agreement_window: String,
    },
}

#[derive(Subcommand, Debug)]
enum BridgeCmd {
    /// Agreement per route (compared, equal, different, errors; the fields that differ most).
    Report {
        /// Only the last DURATION of the log (e.g. 24h).
        #[arg(long)]
        window: Option<String>,
        /// text or json.
        #[arg(long, default_value = "text")]
        format: String,
    },
}

fn init_logging(format: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PATINA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,odbc_api=error"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if format == "json" {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn main() -> ExitCode {
    let code = run(Cli::parse());
    // No thread may be inside an ODBC driver while the process ends (see `settle`): wait for
    // connections still opening or closing, as long as a login may take.
    patina::source::odbc::settle(std::time::Duration::from_secs(10));
    code
}

fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve {
            config,
            listen,
            log_format,
        } => {
            init_logging(&log_format);
            serve(&config, listen.as_deref())
        }
        Command::Openapi { config, out, db } => write_openapi(&config, &out, db),
        Command::Keys { config, action } => keys(&config, action),
        Command::Schema { out } => write_schemas(&out),
        Command::Introspect {
            config,
            source,
            table,
            schema,
            sql,
            sample,
            name,
            names,
            schema_path,
        } => {
            let target = match (table, schema, sql) {
                (Some(t), _, _) => app::introspect::Target::Table(t),
                (_, Some(s), _) => app::introspect::Target::Schema(s),
                (_, _, Some(q)) => app::introspect::Target::Sql(q),
                _ => unreachable!("clap requires one of --table, --schema, --sql"),
            };
            introspect(
                &config,
                &app::introspect::Request {
                    source,
                    target,
                    sample,
                    name,
                    schema: schema_path,
                    command: std::env::args()
                        .skip(1)
                        .map(|a| if a.contains(' ') { format!("'{a}'") } else { a })
                        .fold("patina".to_string(), |acc, a| acc + " " + &a),
                },
                names.as_deref(),
            )
        }
        Command::Dlq { config, action } => dlq(&config, action),
        Command::DedupTable {
            config,
            dialect,
            table,
        } => dedup_table(&config, dialect.as_deref(), table.as_deref()),
        Command::Token {
            config,
            sub,
            scopes,
            claims,
            ttl,
        } => token(&config, &sub, &scopes, &claims, &ttl),
        Command::Check {
            config,
            db,
            format,
            min_agreement,
            agreement_window,
        } => {
            init_logging("text");
            let guard = match min_agreement.map(|m| (m, agreement_window)) {
                None => None,
                Some((m, w)) => match patina::config::parse_duration(&w) {
                    Some(d) if (0.0..=1.0).contains(&m) => Some((m, d, w)),
                    _ => {
                        eprintln!(
                            "patina: --min-agreement is a share from 0 to 1 and --agreement-window a duration (24h)"
                        );
                        return ExitCode::from(2);
                    }
                },
            };
            check(&config, db, &format, guard.as_ref())
        }
        Command::Bridge {
            config,
            action: BridgeCmd::Report { window, format },
        } => bridge_report(&config, window.as_deref(), &format),
        Command::Scan {
            config,
            routes,
            all: _,
            limit,
            params,
            timeout,
            format,
        } => scan(&config, routes, limit, &params, &timeout, &format),
    }
}

/// `patina introspect`: the mapping file on stdout; exit 2 when the database cannot say.
fn introspect(
    config_path: &std::path::Path,
    req: &app::introspect::Request,
    names: Option<&std::path::Path>,
) -> ExitCode {
    let mut dict = app::introspect::Dictionary::default();
    if let Some(path) = names {
        let extended = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|t| dict.extend_from_toml(&t));
        if let Err(e) = extended {
            eprintln!("patina: {}: {e}", path.display());
            return ExitCode::from(2);
        }
    }
    let config = match Config::load_for_check(config_path) {
        Ok((config, _)) => config,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let made = runtime()
        .map_err(|e| e.to_string())
        .and_then(|rt| rt.block_on(app::introspect::introspect(&config, req, &dict)));
    match made {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("patina: {e}");
            ExitCode::from(2)
        }
    }
}

/// The editor schemas, each followed by a newline, as committed under `schemas/`.
fn write_schemas(out: &std::path::Path) -> ExitCode {
    let files = [
        ("mapping.schema.json", patina::mapping::mapping_schema()),
        ("config.schema.json", patina::config::config_schema()),
    ];
    let result = std::fs::create_dir_all(out).and_then(|()| {
        files.iter().try_for_each(|(name, schema)| {
            let text = format!("{}\n", serde_json::to_string_pretty(schema)?);
            std::fs::write(out.join(name), text)?;
            eprintln!("wrote {}", out.join(name).display());
            Ok(())
        })
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cannot write the schemas to {}: {e}", out.display());
            ExitCode::FAILURE
        }
    }
}

/// Config and mappings, or every error printed.
fn load(config_path: &std::path::Path) -> Option<app::App> {
    app::App::load(config_path)
        .map_err(|e| eprintln!("{e}"))
        .ok()
}

/// The config and mappings for a command that neither connects nor signs: `${VAR}`s the
/// environment does not set are stood in for, as `check` does (CI makes OpenAPI documents and
/// DDL without the production secrets).
fn load_offline(config_path: &std::path::Path) -> Option<app::App> {
    Config::load_for_check(config_path)
        .and_then(|(config, _unset)| app::App::from_config(config))
        .map_err(|e| eprintln!("{e}"))
        .ok()
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

fn serve(config_path: &std::path::Path, listen: Option<&str>) -> ExitCode {
    let Some(app) = load(config_path) else {
        return ExitCode::FAILURE;
    };
    let system = actix_web::rt::System::new();
    let result = system.block_on(async {
        let running = app.start(listen)?;
        println!("patina listening on http://{}", running.addr);
        running.run().await.map_err(app::StartError::Bind)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("patina: {e}");
            ExitCode::FAILURE
        }
    }
}

fn split_scopes(s: &str) -> Vec<String> {
    s.split([',', ' '])
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

fn load_config(path: &std::path::Path) -> Option<Config> {
    match Config::load(path) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("{e}");
            None
        }
    }
}

fn keys(config_path: &std::path::Path, action: KeysAction) -> ExitCode {
    use patina::auth::keys::{KeysFile, mint};
    use patina::clock::now_rfc3339;
    // Only the keys file's place is read: no secret is needed.
    let config = Config::load_for_check(config_path).map(|(config, _unset)| config);
    let Some(config) = config.map_err(|e| eprintln!("{e}")).ok() else {
        return ExitCode::FAILURE;
    };
    let Some(path) = config.auth.api_keys_file else {
        eprintln!(
            "patina: set [auth] api_keys_file = \"keys.toml\" in {}",
            config_path.display()
        );
        return ExitCode::FAILURE;
    };
    let mut file = match KeysFile::read(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("patina: {e}");
            return ExitCode::FAILURE;
        }
    };
    match action {
        KeysAction::New {
            name,
            scopes,
            expires,
            rate,
        } => {
            if let Some(e) = &expires
                && patina::codec::date_header_forms(e).is_none()
            {
                eprintln!("patina: --expires must be a date, YYYY-MM-DD");
                return ExitCode::FAILURE;
            }
            if let Some(r) = &rate
                && patina::config::RateSpec::parse(r).is_none()
            {
                eprintln!("patina: --rate must look like 60/minute (per second, minute or hour)");
                return ExitCode::FAILURE;
            }
            let (key, stored) = mint(&name, split_scopes(&scopes), expires, rate);
            let id = stored.id.clone();
            file.keys.push(stored);
            if let Err(e) = file.write(&path) {
                eprintln!("patina: {e}");
                return ExitCode::FAILURE;
            }
            eprintln!(
                "key {id} for {name} added to {}; it is shown once:",
                path.display()
            );
            println!("{key}");
        }
        KeysAction::List => {
            println!(
                "{:<10} {:<20} {:<24} {:<12} {:<12} status",
                "id", "name", "scopes", "expires", "rate"
            );
            for k in &file.keys {
                println!(
                    "{:<10} {:<20} {:<24} {:<12} {:<12} {}",
                    k.id,
                    k.name,
                    k.scopes.join(","),
                    k.expires.as_deref().unwrap_or("-"),
                    k.rate.as_deref().unwrap_or("-"),
                    k.revoked
                        .as_ref()
                        .map_or("active".to_string(), |r| format!("revoked {r}"))
                );
            }
        }
        KeysAction::Revoke { id } => {
            let Some(k) = file.keys.iter_mut().find(|k| k.id == id) else {
                eprintln!("patina: no key with id {id} (see `patina keys list`)");
                return ExitCode::FAILURE;
            };
            k.revoked = Some(now_rfc3339());
            if let Err(e) = file.write(&path) {
                eprintln!("patina: {e}");
                return ExitCode::FAILURE;
            }
            println!("revoked {id}");
        }
    }
    ExitCode::SUCCESS
}

fn token(
    config_path: &std::path::Path,
    sub: &str,
    scopes: &str,
    claims: &[String],
    ttl: &str,
) -> ExitCode {
    let Some(config) = load_config(config_path) else {
        return ExitCode::FAILURE;
    };
    let Some(jwt) = config.auth.jwt.as_ref() else {
        eprintln!("patina: the config has no [auth.jwt]");
        return ExitCode::FAILURE;
    };
    let Some(secret) = jwt.hs256_secret.as_ref() else {
        eprintln!("patina: `patina token` signs with auth.jwt.hs256_secret, which is not set");
        return ExitCode::FAILURE;
    };
    let Some(ttl) = patina::config::parse_duration(ttl) else {
        eprintln!(
            "patina: --ttl must look like 30m or 8h ({})",
            patina::config::DURATION_UNITS
        );
        return ExitCode::FAILURE;
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut map = serde_json::Map::new();
    map.insert("sub".into(), sub.into());
    map.insert("iat".into(), now.into());
    map.insert("exp".into(), (now + ttl.as_secs()).into());
    if let Some(iss) = &jwt.issuer {
        map.insert("iss".into(), iss.clone().into());
    }
    if let Some(aud) = &jwt.audience {
        map.insert("aud".into(), aud.clone().into());
    }
    // Where the gateway reads scopes from (`[auth] scopes_claim`).
    map.insert(
        config.auth.scopes_claim_name().into(),
        split_scopes(scopes).join(" ").into(),
    );
    for c in claims {
        let Some((k, v)) = c.split_once('=') else {
            eprintln!("patina: --claim takes NAME=VALUE");
            return ExitCode::FAILURE;
        };
        let value = v
            .parse::<i64>()
            .map_or_else(|_| serde_json::Value::from(v), serde_json::Value::from);
        map.insert(k.to_string(), value);
    }
    match patina::auth::jwt::mint_hs256(secret.expose(), &map) {
        Ok(t) => {
            println!("{t}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("patina: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_openapi(config_path: &std::path::Path, out: &std::path::Path, db: bool) -> ExitCode {
    let loaded = if db {
        load(config_path)
    } else {
        load_offline(config_path)
    };
    let Some(app::App { config, compiled }) = loaded else {
        return ExitCode::FAILURE;
    };
    let learned = patina::shape::Learned::new(compiled.catalog.routes.len());
    if db {
        let described = runtime()
            .map_err(|e| e.to_string())
            .and_then(|rt| rt.block_on(app::describe_routes(&config, &compiled.catalog, &learned)));
        match described {
            Ok(found) => found.iter().for_each(|d| eprintln!("{d}")),
            Err(e) => {
                eprintln!("patina: cannot describe the routes: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let docs = patina::openapi::Documents::build(&compiled.catalog, &learned, &config.docs);
    if let Err(e) = std::fs::create_dir_all(out) {
        eprintln!("patina: cannot create {}: {e}", out.display());
        return ExitCode::FAILURE;
    }
    for (version, text) in &docs.rendered {
        let path = out.join(format!("{version}.json"));
        if let Err(e) = std::fs::write(&path, text) {
            eprintln!("patina: cannot write {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
        println!("wrote {}", path.display());
    }
    ExitCode::SUCCESS
}

fn scan(
    config_path: &std::path::Path,
    routes: Vec<String>,
    limit: Option<usize>,
    params: &[String],
    timeout: &str,
    format: &str,
) -> ExitCode {
    if !["text", "json"].contains(&format) {
        eprintln!("patina: --format is text or json");
        return ExitCode::from(2);
    }
    let Some(timeout) = patina::config::parse_duration(timeout) else {
        eprintln!("patina: --timeout is not a duration (e.g. 30m)");
        return ExitCode::from(2);
    };
    let mut pairs = Vec::new();
    for p in params {
        let Some((k, v)) = p.split_once('=') else {
            eprintln!("patina: --param takes NAME=VALUE, not `{p}`");
            return ExitCode::from(2);
        };
        pairs.push((k.to_string(), v.to_string()));
    }
    let Some(app::App { config, compiled }) = load(config_path) else {
        return ExitCode::from(2);
    };
    let opts = app::scan::ScanOptions {
        routes,
        limit,
        params: pairs,
        timeout,
        progress: format == "text",
    };
    let scanned = match runtime() {
        Ok(rt) => rt.block_on(app::scan::scan(&config, &compiled.catalog, &opts)),
        Err(e) => Err(e.to_string()),
    };
    let scans = match scanned {
        Ok(s) => s,
        Err(e) => {
            eprintln!("patina: {e}");
            return ExitCode::from(2);
        }
    };
    if format == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "routes": scans }))
                .unwrap_or_default()
        );
    } else {
        print!("{}", app::scan::render_text(&scans));
    }
    if scans.iter().any(|s| s.error.is_some()) {
        ExitCode::from(2)
    } else if scans.iter().any(|s| s.failing() > 0) {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// `patina check`: every finding, as text (stderr), JSON (stdout) or GitHub annotations
/// (stdout). Exit 0 when clean, 1 with warnings only, 2 with an error.
/// `patina bridge report`.
fn bridge_report(config_path: &std::path::Path, window: Option<&str>, format: &str) -> ExitCode {
    if !["text", "json"].contains(&format) {
        eprintln!("patina: --format is text or json");
        return ExitCode::from(2);
    }
    let window = match window.map(|w| patina::config::parse_duration(w).ok_or(w)) {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(w)) => {
            eprintln!("patina: --window `{w}` is not a duration (e.g. 24h)");
            return ExitCode::from(2);
        }
    };
    let config = match Config::load_for_check(config_path) {
        Ok((c, _)) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let (routes, unreadable) = match app::bridge::summarize(&config, window) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("patina: {e}");
            return ExitCode::from(2);
        }
    };
    if format == "json" {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "log": config.bridge_log.display().to_string(),
                "routes": routes,
                "unreadable_lines": unreadable,
            }))
            .unwrap_or_default()
        );
        return ExitCode::SUCCESS;
    }
    if routes.is_empty() {
        println!("no comparisons in {}", config.bridge_log.display());
    }
    for r in &routes {
        let agreement = r
            .agreement
            .map_or_else(|| "-".to_string(), |a| format!("{:.2}%", a * 100.0));
        println!(
            "{}: agreement {agreement} ({} equal, {} different, {} errors of {} compared)",
            r.route, r.equal, r.different, r.errors, r.compared
        );
        for (field, n) in &r.top_differences {
            println!("    {field}: differs in {n}");
        }
    }
    if unreadable > 0 {
        eprintln!("patina: {unreadable} line(s) of the log could not be read");
    }
    ExitCode::SUCCESS
}

fn check(
    config_path: &std::path::Path,
    db: bool,
    format: &str,
    guard: Option<&(f64, std::time::Duration, String)>,
) -> ExitCode {
    if !["text", "json", "github"].contains(&format) {
        eprintln!("patina: --format is text, json or github");
        return ExitCode::from(2);
    }
    let mut found: Vec<Diagnostic> = Vec::new();
    let mut summary = String::new();
    let mut accepted: Vec<String> = Vec::new();
    match Config::load_for_check(config_path) {
        Err(e) => found.extend(e.diagnostics),
        Ok((mut config, unset)) => {
            found.extend(unset.iter().map(|u| u.diagnostic.clone()));
            // check --db connects only to sources whose variables are all set.
            let skipped: Vec<String> = config
                .sources
                .iter()
                .filter(|(_, s)| Config::unset_in(s))
                .map(|(n, _)| n.clone())
                .collect();
            match app::App::from_config(config.clone()) {
                Err(e) => found.extend(e.diagnostics),
                Ok(app::App { compiled, .. }) => {
                    found.extend(compiled.warnings.iter().cloned());
                    let routes = compiled.catalog.routes.len();
                    let versions = compiled.catalog.versions().join(", ");
                    summary = format!("{routes} route(s) in {versions}");
                    let learned = patina::shape::Learned::new(routes);
                    if db {
                        for name in &skipped {
                            let vars: Vec<&str> = unset
                                .iter()
                                .filter(|u| u.source.as_deref() == Some(name.as_str()))
                                .map(|u| u.var.as_str())
                                .collect();
                            found.push(Diagnostic {
                                severity: Severity::Error,
                                file: config.file.display().to_string(),
                                line: 0,
                                column: 0,
                                message: format!(
                                    "source `{name}` is not checked against its database: {} not set",
                                    if vars.is_empty() {
                                        "a variable it needs is".to_string()
                                    } else {
                                        format!("`{}` is", vars.join("`, `"))
                                    }
                                ),
                                hint: Some("export the variables of the sources check --db connects to".into()),
                            });
                            config.sources.shift_remove(name);
                        }
                        match check_db(&config, &compiled.catalog, &learned) {
                            Ok(more) => found.extend(more),
                            Err(e) => {
                                eprintln!("patina: cannot start: {e}");
                                return ExitCode::from(2);
                            }
                        }
                        summary.push_str(", checked against their databases");
                    }
                    if let Some((min, window, text)) = guard {
                        match app::bridge::guard(
                            &config,
                            &compiled.catalog,
                            *min,
                            (*window, text.as_str()),
                        ) {
                            Ok(more) => found.extend(more),
                            Err(e) => {
                                eprintln!("patina: {e}");
                                return ExitCode::from(2);
                            }
                        }
                    }
                    // Response bodies are compared only when every route was described.
                    let published = app::published::check_published(
                        &config,
                        &compiled.catalog,
                        &learned,
                        db && skipped.is_empty(),
                    );
                    found.extend(published.diagnostics);
                    accepted = published.accepted;
                    if !published.compared.is_empty() {
                        let _ = write!(
                            summary,
                            ", compared with the published {} in {}",
                            published.compared.join(", "),
                            config.published_dir.display()
                        );
                    }
                }
            }
        }
    }
    let errors = found
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = found.len() - errors;
    match format {
        "json" => println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "errors": errors,
                "warnings": warnings,
                "diagnostics": found.iter().map(Diagnostic::to_json).collect::<Vec<_>>(),
                "accepted_breaking_changes": accepted,
            }))
            .unwrap_or_default()
        ),
        "github" => {
            for d in &found {
                println!("{}", d.to_github());
            }
        }
        _ => {
            for d in &found {
                eprintln!("{d}");
            }
        }
    }
    if errors > 0 {
        if format == "text" {
            eprintln!(
                "{errors} error{} found; nothing was loaded",
                if errors == 1 { "" } else { "s" }
            );
        }
        ExitCode::from(2)
    } else {
        if format == "text" {
            for a in &accepted {
                println!("accepted breaking change: {a}");
            }
            println!("ok: {summary}");
        }
        if warnings > 0 {
            ExitCode::from(1)
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// `check --db`: prepare every statement on its database and probe the page keys.
fn check_db(
    config: &Config,
    catalog: &patina::catalog::Catalog,
    learned: &patina::shape::Learned,
) -> Result<Vec<Diagnostic>, String> {
    let sources = app::start_sources(config)?;
    let rt = runtime().map_err(|e| e.to_string())?;
    Ok(rt.block_on(async {
        let mut found = app::check_against_sources(catalog, &sources, Some(learned)).await;
        found.extend(app::probe_page_keys(catalog, &sources).await);
        found
    }))
}

fn dlq(config_path: &std::path::Path, action: DlqCmd) -> ExitCode {
    use patina::app::dlq::DlqAction;
    let config = match Config::load(config_path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let (action, list) = match action {
        DlqCmd::List { route } => (DlqAction::List { route }, true),
        DlqCmd::Show { id } => (DlqAction::Show { id }, false),
        DlqCmd::Replay {
            all: true,
            route: Some(route),
            ..
        } => (DlqAction::ReplayRoute { route }, false),
        DlqCmd::Replay { ids, .. } if !ids.is_empty() => (DlqAction::Replay { ids }, false),
        DlqCmd::Replay { .. } => {
            eprintln!("patina: name the dead letters to replay, or --all --route ROUTE");
            return ExitCode::from(2);
        }
        DlqCmd::Drop { ids } => (DlqAction::Drop { ids }, false),
    };
    match app::dlq::run(&config, &action) {
        Ok(v) if list => {
            let letters = v["data"].as_array().cloned().unwrap_or_default();
            if letters.is_empty() {
                println!("no dead letters");
            }
            for d in &letters {
                let s = |k: &str| d[k].as_str().unwrap_or("").to_string();
                println!(
                    "{}  {}  accepted {}  attempts {}  {}{}",
                    s("id"),
                    s("route"),
                    s("accepted_at"),
                    d["attempts"],
                    s("last_error"),
                    d["last_error_detail"]
                        .as_str()
                        .map(|t| format!(": {t}"))
                        .unwrap_or_default()
                );
            }
            ExitCode::SUCCESS
        }
        Ok(v) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&v).unwrap_or_else(|_| v.to_string())
            );
            let none = ["replayed", "dropped"]
                .iter()
                .any(|k| v[*k].as_array().is_some_and(Vec::is_empty));
            if none {
                eprintln!("patina: no dead letter matched");
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("patina: {e}");
            ExitCode::FAILURE
        }
    }
}

fn dedup_table(
    config_path: &std::path::Path,
    dialect: Option<&str>,
    table: Option<&str>,
) -> ExitCode {
    if let (Some(d), Some(t)) = (dialect, table) {
        let Some(d) = patina::dialect::Dialect::parse(d) else {
            eprintln!(
                "patina: unknown dialect `{d}` (one of {})",
                patina::dialect::Dialect::NAMES.join(", ")
            );
            return ExitCode::from(2);
        };
        println!("{}", d.dedup_table_ddl(t));
        return ExitCode::SUCCESS;
    }
    let Some(app::App { config, compiled }) = load_offline(config_path) else {
        return ExitCode::FAILURE;
    };
    let mut seen = std::collections::BTreeSet::new();
    for r in &compiled.catalog.routes {
        let Some(dedup) = r
            .write
            .as_ref()
            .and_then(|w| w.queue.as_ref())
            .and_then(|q| q.dedup.as_ref())
        else {
            continue;
        };
        let Some(src) = config.sources.get(&r.source) else {
            continue;
        };
        if seen.insert((r.source.clone(), dedup.table.clone())) {
            println!(
                "-- source `{}` ({}), routes writing to {}\n{}\n",
                r.source,
                src.dialect.name(),
                dedup.table,
                src.dialect.dedup_table_ddl(&dedup.table)
            );
        }
    }
    if seen.is_empty() {
        eprintln!("patina: no queued route names a dedup_table");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}
