//! The `patina` command line: `serve` and `check`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use patina::app;
use patina::diag::Severity;
use tracing::{info, warn};

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
    },
    /// Check the config and every mapping file; exit 1 on any error.
    Check {
        #[arg(long, default_value = "patina.toml", env = "PATINA_CONFIG")]
        config: PathBuf,
        /// Also prepare every statement against its database and compare it with the mapping.
        #[arg(long)]
        db: bool,
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
    let cli = Cli::parse();
    match cli.command {
        Command::Serve {
            config,
            listen,
            log_format,
        } => {
            init_logging(&log_format);
            serve(&config, listen.as_deref())
        }
        Command::Openapi { config, out } => write_openapi(&config, &out),
        Command::Check { config, db } => {
            init_logging("text");
            check(&config, db)
        }
    }
}

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
}

fn serve(config_path: &std::path::Path, listen: Option<&str>) -> ExitCode {
    let (config, compiled) = match app::load(config_path) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    for w in &compiled.warnings {
        warn!("{w}");
    }
    let catalog = Arc::new(compiled.catalog);
    let sources = app::start_sources(&config);
    let system = actix_web::rt::System::new();
    let result: std::io::Result<()> = system.block_on(async {
        let gateway = app::build(&config, &catalog, sources.clone(), listen)?;
        info!(
            routes = catalog.routes.len(),
            versions = ?catalog.versions(),
            "patina listening on http://{}",
            gateway.addr
        );
        println!("patina listening on http://{}", gateway.addr);
        let check_catalog = Arc::clone(&catalog);
        actix_web::rt::spawn(async move {
            for d in app::check_against_sources(&check_catalog, &sources).await {
                warn!("{d}");
            }
        });
        gateway.server.await
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("patina: cannot serve: {e}");
            ExitCode::FAILURE
        }
    }
}

fn write_openapi(config_path: &std::path::Path, out: &std::path::Path) -> ExitCode {
    let (config, compiled) = match app::load(config_path) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let docs = patina::openapi::Documents::build(&compiled.catalog, &config.docs);
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

fn check(config_path: &std::path::Path, db: bool) -> ExitCode {
    let (config, compiled) = match app::load(config_path) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    for w in &compiled.warnings {
        eprintln!("{w}");
    }
    let routes = compiled.catalog.routes.len();
    let versions = compiled.catalog.versions().join(", ");
    if db {
        let sources = app::start_sources(&config);
        let found = match runtime() {
            Ok(rt) => rt.block_on(app::check_against_sources(&compiled.catalog, &sources)),
            Err(e) => {
                eprintln!("patina: cannot start: {e}");
                return ExitCode::FAILURE;
            }
        };
        for d in &found {
            eprintln!("{d}");
        }
        let errors = found
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        if errors > 0 {
            eprintln!("{errors} error(s) against the live database");
            return ExitCode::FAILURE;
        }
        println!("ok: {routes} route(s) in {versions}, checked against their databases");
    } else {
        println!("ok: {routes} route(s) in {versions}");
    }
    ExitCode::SUCCESS
}
