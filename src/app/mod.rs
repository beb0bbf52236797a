//! Start-up, the one path: config → compiled catalog → running sources → bound server, then the
//! mapping watcher ([`reload`]) and the live check of every route against its database (its
//! warnings in the log; `patina check --db` prints them). `patina serve`, reloads and every
//! integration test go through [`App::start`]. Owns the order in which things are built; each
//! step's logic lives in its own module.

pub mod bridge;
pub mod dlq;
pub mod introspect;
pub mod published;
pub mod reload;
pub mod scan;

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;
use tracing::{error, info, warn};

use crate::audit::Audit;
use crate::auth::Authenticator;
use crate::catalog::Catalog;
use crate::config::{Config, SourceKind, StateBackend, Unreachable};
use crate::diag::{Diagnostic, LoadError, Severity};
use crate::dialect::{Client, Placeholders};
use crate::http::{self, AppState, Gateway, Security};
use crate::mapping::{self, Compiled, SourceInfo};
use crate::shape::{Learned, SqlType};
use crate::source::{Pool, Source, SourceError};
use crate::state::redis::Redis;
use reload::{Reloader, WatchGuard};

/// Compile the mappings a config points at.
pub fn compile_catalog(config: &Config) -> Result<Compiled, LoadError> {
    let infos: IndexMap<String, SourceInfo> = config
        .sources
        .iter()
        .map(|(n, s)| {
            let placeholders = Placeholders::for_client(match s.kind() {
                SourceKind::Odbc => Client::Odbc,
                SourceKind::Mssql => Client::Tds,
            });
            (
                n.clone(),
                SourceInfo {
                    dialect: s.dialect,
                    placeholders,
                    on_invalid: s.on_invalid.unwrap_or(config.on_invalid),
                },
            )
        })
        .collect();
    let mut compiled = mapping::load_dir(&config.mappings_dir, &infos, config.max_rows)?;
    compiled
        .warnings
        .splice(0..0, config.warnings.iter().cloned());
    let no_auth = config.auth.jwt.is_none() && config.auth.api_keys_file.is_none();
    let guarded = compiled.catalog.routes.iter().filter(|r| !r.public).count();
    if no_auth && guarded > 0 {
        compiled.warnings.push(Diagnostic {
            severity: Severity::Warning,
            file: config.file.display().to_string(),
            line: 0,
            column: 0,
            message: format!(
                "{guarded} route(s) need scopes, but [auth] configures no JWT keys and no API \
                 keys file: they will answer 401 to everyone"
            ),
            hint: Some("configure [auth.jwt] or [auth] api_keys_file".into()),
        });
    }
    Ok(compiled)
}

/// Start a source for every configured one.
pub fn start_sources(config: &Config) -> Result<HashMap<String, Arc<Source>>, String> {
    config
        .sources
        .iter()
        .map(|(name, cfg)| {
            Source::start(cfg)
                .map(|s| (name.clone(), s))
                .map_err(|e| format!("source `{name}`: {e}"))
        })
        .collect()
}

/// A loaded gateway: its config and compiled mappings, checked and ready to start. The one
/// start-up path: `patina serve`, reloads and every integration test go through it.
#[derive(Debug)]
pub struct App {
    pub config: Config,
    pub compiled: Compiled,
}

/// A gateway that is listening: its address, its state (catalog swaps go through it) and the
/// server to await.
#[allow(missing_debug_implementations)]
pub struct RunningApp {
    pub addr: std::net::SocketAddr,
    pub state: actix_web::web::Data<AppState>,
    pub reloader: Reloader,
    server: actix_web::dev::Server,
    _watching: Option<WatchGuard>,
}

/// How often expired idempotency records are purged.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_mins(10);

impl App {
    /// Read the config file and compile the mappings it names; touches no database.
    pub fn load(config_path: &Path) -> Result<App, LoadError> {
        Self::from_config(Config::load(config_path)?)
    }

    /// Compile the mappings of an already loaded config.
    pub fn from_config(config: Config) -> Result<App, LoadError> {
        let compiled = compile_catalog(&config)?;
        Ok(App { config, compiled })
    }

    /// Start the sources, bind the server (`listen` overrides the config's address), watch
    /// the mapping files, reload on SIGHUP, and check every route against its database in the
    /// background (warnings in the log). Must run inside an actix system; await
    /// [`RunningApp::run`] to serve.
    pub fn start(self, listen: Option<&str>) -> Result<RunningApp, StartError> {
        let App { config, compiled } = self;
        for w in &compiled.warnings {
            warn!("{w}");
        }
        let catalog = Arc::new(compiled.catalog);
        let sources = start_sources(&config).map_err(StartError::Sources)?;
        let redis = start_redis(&config)?;
        let gateway = build(&config, &catalog, sources, redis, listen).map_err(StartError::Bind)?;
        // Describing runs once at start and again after every reload that swaps a catalog in.
        let (describe, mut to_describe) = tokio::sync::mpsc::unbounded_channel::<()>();
        let check_config = config.clone();
        let state_dir = config.state.dir.clone();
        let reloader = Reloader::new(config, gateway.state.clone(), describe.clone());
        let watching = match reloader.watch() {
            Ok(guard) => Some(guard),
            Err(e) => {
                warn!(error = %e, "mapping files are not watched; reload with SIGHUP");
                None
            }
        };
        reloader.on_sighup();
        info!(
            routes = catalog.routes.len(),
            versions = ?catalog.versions(),
            "patina listening on http://{}",
            gateway.addr
        );
        let state = gateway.state.clone();
        actix_web::rt::spawn(async move {
            while to_describe.recv().await.is_some() {
                // Several reloads in a row: describe only the catalog served now.
                while to_describe.try_recv().is_ok() {}
                let (catalog, learned) = state.catalog_and_learned();
                match describe_routes(&check_config, &catalog, &learned).await {
                    Ok(found) => found.iter().for_each(|d| warn!("{d}")),
                    Err(e) => warn!("routes not checked against their databases: {e}"),
                }
            }
        });
        let _ = describe.send(());
        // Expired idempotency records and delivered writes past their retention are dropped
        // now and then (a claim ignores expired records anyway; Redis expires its own).
        let state = gateway.state.clone();
        actix_web::rt::spawn(async move {
            let mut every = tokio::time::interval(PURGE_EVERY);
            every.tick().await;
            loop {
                every.tick().await;
                if let Some(store) = state.open_store() {
                    match actix_web::web::block(move || store.purge_expired()).await {
                        Ok(Ok(n)) if n > 0 => {
                            info!(records = n, "expired idempotency records purged");
                        }
                        Ok(Err(e)) => warn!(error = %e, "expired idempotency records not purged"),
                        _ => {}
                    }
                }
                if let Some(queue) = state.open_queue_store() {
                    match queue
                        .purge_delivered(state.queue_settings().keep_delivered)
                        .await
                    {
                        Ok(n) if n > 0 => {
                            info!(records = n, "delivered writes past their retention purged");
                        }
                        Ok(_) => {}
                        Err(e) => warn!(error = %e, "delivered writes not purged"),
                    }
                }
            }
        });
        // Queued writes are delivered in the background for as long as the server runs.
        actix_web::rt::spawn(http::deliver::run(gateway.state.clone()));
        // `patina dlq` reaches the running gateway through a socket beside its store.
        #[cfg(unix)]
        {
            let socket = state_dir.join(http::admin::SOCKET);
            match http::admin::bind_local(gateway.state.clone(), &socket) {
                Ok(server) => {
                    actix_web::rt::spawn(server);
                }
                Err(e) => {
                    warn!(path = %socket.display(), error = %e, "the local admin socket is not served; `patina dlq` works only while the gateway is stopped");
                }
            }
        }
        Ok(RunningApp {
            addr: gateway.addr,
            state: gateway.state,
            reloader,
            server: gateway.server,
            _watching: watching,
        })
    }
}

impl RunningApp {
    /// Serve until the server stops (a signal, or [`RunningApp::handle`]'s `stop`).
    pub async fn run(self) -> std::io::Result<()> {
        // The watcher stays alive (in `self`) for as long as the server runs.
        self.server.await
    }

    /// Stops the server from elsewhere.
    pub fn handle(&self) -> actix_web::dev::ServerHandle {
        self.server.handle()
    }
}

/// Longest the start-up check of Redis (connection and durability settings) may take.
const REDIS_CHECK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// With `[state] backend = "redis"`: the shared connection, and in the background its
/// start-up check (reachable within [`REDIS_CHECK_TIMEOUT`]? durable?), logged. A Redis that is
/// away at start does not stop the gateway: calls reconnect by themselves, rate limits follow
/// `redis_unreachable` meanwhile.
fn start_redis(config: &Config) -> Result<Option<(Arc<Redis>, Unreachable)>, StartError> {
    let StateBackend::Redis(settings) = &config.state.backend else {
        return Ok(None);
    };
    let redis = Arc::new(Redis::lazy(&settings.url).map_err(|e| StartError::State(e.to_string()))?);
    let check = Arc::clone(&redis);
    actix_web::rt::spawn(async move {
        match tokio::time::timeout(REDIS_CHECK_TIMEOUT, check.check_durability()).await {
            Ok(Ok(_)) => info!(redis = check.url(), "shared state on Redis"),
            Ok(Err(e)) => error!(error = %e, "Redis cannot be reached at start; calls retry it"),
            Err(_) => error!(
                redis = check.url(),
                "Redis did not answer within {}s at start; calls retry it",
                REDIS_CHECK_TIMEOUT.as_secs()
            ),
        }
    });
    Ok(Some((redis, settings.unreachable)))
}

/// Why a loaded gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot start: {0}")]
    Sources(String),
    #[error("cannot start: [state]: {0}")]
    State(String),
    #[error("cannot serve: {0}")]
    Bind(std::io::Error),
}

/// Bind the server for a loaded config. `listen` overrides the config's address.
fn build(
    config: &Config,
    catalog: &Arc<Catalog>,
    sources: HashMap<String, Arc<Source>>,
    redis: Option<(Arc<Redis>, Unreachable)>,
    listen: Option<&str>,
) -> std::io::Result<Gateway> {
    let workers = std::thread::available_parallelism().map_or(2, usize::from);
    let security = Security {
        auth: Authenticator::new(&config.auth)
            .map_err(|e| std::io::Error::other(format!("[auth]: {e}")))?,
        rate: config.rate_limit.clone(),
        audit: Audit::open(config.audit_file.as_deref())
            .map_err(|e| std::io::Error::other(format!("[audit] file: {e}")))?,
        cors_origins: config.cors_origins.clone(),
    };
    let tls = match &config.tls {
        Some((cert, key)) => Some(http::tls_config(cert, key)?),
        None => None,
    };
    let mut state = AppState::new(Arc::clone(catalog), config.docs.clone(), sources, security)
        .with_writes(config.max_body_bytes, config.state.clone())
        .with_queue(config.queue)
        .with_bridge_log(config.bridge_log.clone());
    let shared = redis.is_some();
    if let Some((redis, unreachable)) = redis {
        state = state.with_redis(redis, unreachable);
    }
    state = state.with_cursor_key(cursor_key(config, shared)?);
    http::bind(state, listen.unwrap_or(&config.listen), workers, tls)
}

/// The key page cursors are signed with: `[server] cursor_key`, else one kept in the state
/// folder (made on first start). Replicas sharing state on Redis each have their own folder,
/// so they need the configured key to accept each other's cursors.
fn cursor_key(config: &Config, shared: bool) -> std::io::Result<crate::cursor::CursorKey> {
    if let Some(k) = &config.cursor_key {
        return Ok(crate::cursor::CursorKey::from_secret(k.expose()));
    }
    if shared {
        warn!(
            "no [server] cursor_key: each replica signs page cursors with its own key, so a next page served by another replica answers 400; set cursor_key = \"${{PATINA_CURSOR_KEY}}\" on every replica"
        );
    }
    crate::state::load_or_create_secret(&config.state.dir, "cursor.key")
        .map(crate::cursor::CursorKey::from_bytes)
        .map_err(|e| {
            std::io::Error::other(format!(
                "the cursor key in {}: {e}",
                config.state.dir.display()
            ))
        })
}

/// How long one statement's description may take.
const DESCRIBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Describe every route of `catalog` on its database, keeping what each description says in
/// `learned`, and return what the check finds. Runs on sources of its own, one connection
/// each: a slow description never holds a connection that requests wait for, and the check
/// holds no more of the database than one connection per source.
pub async fn describe_routes(
    config: &Config,
    catalog: &Catalog,
    learned: &Learned,
) -> Result<Vec<Diagnostic>, String> {
    let own = start_sources(&one_connection_each(config))?;
    Ok(check_against_sources(catalog, &own, Some(learned)).await)
}

/// The config with one connection per source: the start-up check describes one statement at
/// a time, and holds no more of the database than that.
fn one_connection_each(config: &Config) -> Config {
    let mut config = config.clone();
    for s in config.sources.values_mut() {
        s.pool_max = 1;
        s.max_concurrent = 1;
    }
    config
}

/// Prepare every route's statement on its source and compare what the database reports with
/// the mapping: result columns the mapping names, parameter counts, column types the gateway
/// cannot decode. Nothing is executed. With `learned`, what each description says is kept for the running catalog (parameter
/// ranges, result columns for the documents).
pub async fn check_against_sources(
    catalog: &Catalog,
    sources: &HashMap<String, Arc<Source>>,
    learned: Option<&Learned>,
) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    let diag = |severity,
                route: &crate::catalog::RoutePlan,
                message: String,
                hint: Option<&str>| Diagnostic {
        severity,
        file: route.file.clone(),
        line: route.line,
        column: 0,
        message: format!("route `{}`: {message}", route.id),
        hint: hint.map(str::to_string),
    };
    // A finding about one mapped column points at its line.
    let at = |line: usize, d: Diagnostic| Diagnostic { line, ..d };
    // Each route, then the shadows and mirrors of the migration bridge (on their own sources;
    // what they describe is not kept for the documents).
    let plans = catalog
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| (Some(i), r))
        .chain(catalog.routes.iter().flat_map(|r| {
            r.shadow
                .iter()
                .map(|s| (None, &s.plan))
                .chain(r.mirror.iter().map(|m| (None, m)))
        }));
    for (index, route) in plans {
        let Some(source) = sources.get(&route.source) else {
            continue;
        };
        // A read has one statement; a write one per step, each prepared, never run.
        // A batch route's batched statements come first, its own statement last (the answer's
        // columns are the last statement's).
        let statements: Vec<(Arc<str>, usize, String)> = match &route.write {
            None => route
                .batch
                .iter()
                .flat_map(|b| b.forms.iter())
                .map(|(n, sql)| {
                    (
                        Arc::clone(sql),
                        route.bind_order.len() - 1 + n,
                        format!("batch of {n}: "),
                    )
                })
                .chain([(
                    Arc::clone(&route.sql),
                    route.bind_order.len(),
                    String::new(),
                )])
                .collect(),
            Some(w) => {
                let many = w.steps.len() > 1;
                w.steps
                    .iter()
                    .enumerate()
                    .map(|(k, s)| {
                        let step = if many {
                            format!("step {}: ", k + 1)
                        } else {
                            String::new()
                        };
                        (Arc::clone(&s.sql), s.binds.len(), step)
                    })
                    .collect()
            }
        };
        let last_sql = statements.last().map(|(sql, _, _)| Arc::clone(sql));
        let mut last = None;
        for (sql, binds, step) in statements {
            let described = tokio::time::timeout(DESCRIBE_TIMEOUT, source.describe(sql))
                .await
                .unwrap_or(Err(SourceError::Timeout));
            match described {
                Err(e) => {
                    let text = e.to_string();
                    let hint = if source.dialect().cannot_infer_parameter_type(&text) {
                        "the database cannot infer a parameter's type (typically `:p IS NULL`): \
                         write CAST(:p AS CHAR(1)) IS NULL, with the column's type"
                    } else {
                        "run the SQL by hand against the source to see why"
                    };
                    out.push(diag(
                        Severity::Error,
                        route,
                        format!(
                            "{step}source `{}` could not prepare the statement: {text}",
                            route.source
                        ),
                        Some(hint),
                    ));
                    last = None;
                }
                Ok(d) => {
                    if d.params.len() != binds {
                        out.push(diag(
                            Severity::Error,
                            route,
                            format!(
                                "{step}the database sees {} parameter(s), the mapping binds {binds}",
                                d.params.len(),
                            ),
                            Some("check for `?` or named markers the gateway did not rewrite"),
                        ));
                    }
                    last = Some(d);
                }
            }
        }
        // A queued write's dedup table must be there before the first delivery.
        if let Some(dedup) = route
            .write
            .as_ref()
            .and_then(|w| w.queue.as_ref())
            .and_then(|q| q.dedup.as_ref())
        {
            for sql in [&dedup.check_sql, &dedup.record_sql] {
                let described =
                    tokio::time::timeout(DESCRIBE_TIMEOUT, source.describe(Arc::clone(sql)))
                        .await
                        .unwrap_or(Err(SourceError::Timeout));
                if let Err(e) = described {
                    out.push(diag(
                        Severity::Error,
                        route,
                        format!(
                            "the dedup table `{}` cannot be used on source `{}`: {e}",
                            dedup.table, route.source
                        ),
                        Some("create it with the statement `patina dedup-table` prints"),
                    ));
                    break;
                }
            }
        }
        // The answer's columns come from the (last) statement.
        let Some(d) = last else {
            continue;
        };
        if route.write.is_none() || !d.columns.is_empty() {
            for col in &route.columns {
                if !d
                    .columns
                    .iter()
                    .any(|c| c.name.eq_ignore_ascii_case(&col.db_name))
                {
                    let have: Vec<&str> = d.columns.iter().map(|c| c.name.as_str()).collect();
                    out.push(at(
                        col.line,
                        diag(
                            Severity::Error,
                            route,
                            format!(
                                "mapped column `{}` is not in the result (renamed or dropped?)",
                                col.db_name
                            ),
                            Some(&format!(
                                "the statement returns: {}; update the SQL or the mapping",
                                have.join(", ")
                            )),
                        ),
                    ));
                }
            }
        }
        // Drift: a codec that no longer fits its column's type; a column the database now
        // lets be NULL where the mapping promises a value.
        for col in &route.columns {
            let Some(c) = d
                .columns
                .iter()
                .find(|c| c.name.eq_ignore_ascii_case(&col.db_name))
            else {
                continue;
            };
            // Drivers call every computed column (`… AS NAME`) nullable: only a column read
            // as stored is judged.
            if !col.nullable
                && c.nullable == Some(true)
                && !last_sql
                    .as_deref()
                    .is_some_and(|sql| computed_in(sql, &col.db_name))
            {
                out.push(at(
                    col.line,
                    diag(
                        Severity::Warning,
                        route,
                        format!(
                            "column `{}` (`{}`) is nullable in the database but `nullable = false` here: a NULL would fail the request",
                            col.db_name, col.output
                        ),
                        Some("if it can be NULL, remove nullable = false or add null_if; if not (a NOT NULL column behind an outer join, say), the warning can stay"),
                    ),
                ));
            }
            let Some(ty) = &col.ty else { continue };
            // SQLite's driver reports every NUMERIC as floating point: its type says nothing.
            if source.dialect() == crate::dialect::Dialect::Sqlite && c.sql_type == SqlType::Float {
                continue;
            }
            if let Some(why) = c.sql_type.misfit(ty) {
                out.push(at(
                    col.line,
                    diag(
                        Severity::Warning,
                        route,
                        format!("column `{}` (`{}`): {why}", col.db_name, col.output),
                        Some(
                            "check the column's type in the database and the codec in the mapping",
                        ),
                    ),
                ));
            }
        }
        for c in &d.columns {
            if let SqlType::Unsupported(t) = &c.sql_type {
                // The ODBC driver hands such a value over as text; SQL Server's native
                // protocol has no text form for it.
                let (served, hint) = match source.pool() {
                    Pool::Mssql(_) => (
                        "every request to this route will fail with 500",
                        "CAST it in the SQL: CAST(col AS nvarchar(4000)), or col.ToString() for spatial types",
                    ),
                    Pool::Odbc(_) => (
                        "it is served as the driver's text",
                        "give it a `type` in the mapping, or CAST it in the SQL",
                    ),
                };
                out.push(diag(
                    Severity::Warning,
                    route,
                    format!(
                        "column `{}` has a type the gateway has no codec for ({t}); {served}",
                        c.name
                    ),
                    Some(hint),
                ));
            }
        }
        if let (Some(learned), Some(index)) = (learned, index) {
            learned.set(index, d);
        }
    }
    out
}

/// Whether `sql` names `column` as the alias of something it computes (`… AS column`).
fn computed_in(sql: &str, column: &str) -> bool {
    regex::Regex::new(&format!(
        r#"(?i)\bAS\s+"?{}"?(\W|$)"#,
        regex::escape(column)
    ))
    .is_ok_and(|re| re.is_match(sql))
}

/// How long a probe of a paged route's keys may run.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// `check --db`: does each paged route's `page.by` end in a unique combination? Runs
/// `SELECT COUNT(*) … GROUP BY <keys> HAVING COUNT(*) > 1` over the route's statement with
/// every parameter unset (its default, else NULL). Repeated keys, and a route it cannot tell
/// for (a required, path or claim parameter; a failed or slow probe), are warnings: rows that
/// tie on every key can straddle two pages.
pub async fn probe_page_keys(
    catalog: &Catalog,
    sources: &HashMap<String, Arc<Source>>,
) -> Vec<Diagnostic> {
    use crate::catalog::ParamLocation;
    let mut out = Vec::new();
    for route in &catalog.routes {
        let (Some(page), Some(source)) = (&route.list.page, sources.get(&route.source)) else {
            continue;
        };
        let keys: Vec<&str> = page.by.iter().map(|k| k.column.as_str()).collect();
        let warn = |message: String, hint: &str| Diagnostic {
            severity: Severity::Warning,
            file: route.file.clone(),
            line: 0,
            column: 0,
            message: format!("route `{}`: {message}", route.id),
            hint: Some(hint.to_string()),
        };
        let binds: Option<Vec<crate::codec::BindValue>> = route
            .bind_order
            .iter()
            .map(|&i| {
                let p = &route.params[i];
                (p.location == ParamLocation::Query && !p.required).then(|| p.unset())
            })
            .collect();
        let Some(binds) = binds else {
            out.push(warn(
                format!(
                    "cannot tell whether `page.by` ({}) ends in a unique combination: the statement needs a path, claim or required parameter",
                    keys.join(", ")
                ),
                "make sure the last keys are the table's key (or a unique index), so that rows never tie",
            ));
            continue;
        };
        let sql: Arc<str> = Arc::from(route.list.dialect.duplicate_keys_sql(&route.sql, &keys));
        let count = Arc::new(std::sync::Mutex::new(None));
        let sink = Box::new(crate::encode::CountRows(Arc::clone(&count)));
        let ran = tokio::time::timeout(
            PROBE_TIMEOUT,
            source.query(sql, binds, 1, Some(PROBE_TIMEOUT), sink),
        )
        .await
        .unwrap_or(Err(SourceError::Timeout));
        let repeated = *count
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match (ran, repeated) {
            (Ok(_), Some(0)) => {}
            (Ok(_), Some(n)) => out.push(warn(
                format!(
                    "`page.by` ({}) does not end in a unique combination: {n} key value(s) repeat (every parameter unset); rows that tie can straddle two pages and be served twice or never",
                    keys.join(", ")
                ),
                "add the column(s) that tell the rows apart (the table's key) at the end of `page.by`",
            )),
            (Ok(_), None) | (Err(_), _) => out.push(warn(
                format!(
                    "cannot tell whether `page.by` ({}) ends in a unique combination: the probe did not finish",
                    keys.join(", ")
                ),
                "make sure the last keys are the table's key (or a unique index), so that rows never tie",
            )),
        }
    }
    out
}
