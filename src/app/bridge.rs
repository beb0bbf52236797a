//! The migration bridge's command-line side: `patina bridge report` (agreement per route
//! from the bridge log) and the opt-in cut-over guard of `patina check --min-agreement`,
//! which refuses a route with a shadow whose agreement over a window was below a threshold.

use std::time::Duration;

use crate::bridge::{RouteSummary, report};
use crate::catalog::Catalog;
use crate::config::Config;
use crate::diag::{Diagnostic, Severity};

/// The bridge log summed up per route, over the last `window` (all of it with `None`), and
/// the number of lines that could not be read.
pub fn summarize(
    config: &Config,
    window: Option<Duration>,
) -> Result<(Vec<RouteSummary>, usize), String> {
    let text = match std::fs::read_to_string(&config.bridge_log) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(format!("{}: {e}", config.bridge_log.display())),
    };
    let since = window.map(|w| {
        let ms = u64::try_from(w.as_millis()).unwrap_or(u64::MAX);
        crate::clock::rfc3339_ms(crate::clock::now_ms().saturating_sub(ms))
    });
    Ok(report(&text, since.as_deref()))
}

/// Every route with a shadow whose agreement over `window` is below `min` (or that was never
/// compared in it) is an error at its mapping line.
pub fn guard(
    config: &Config,
    catalog: &Catalog,
    min: f64,
    (window, window_text): (Duration, &str),
) -> Result<Vec<Diagnostic>, String> {
    let (summaries, _) = summarize(config, Some(window))?;
    let mut out = Vec::new();
    for route in catalog.routes.iter().filter(|r| r.shadow.is_some()) {
        let found = summaries.iter().find(|s| s.route == route.id);
        let why = match found.and_then(|s| s.agreement.map(|a| (a, s))) {
            None => Some(format!(
                "its shadow has no comparison in the last {window_text}"
            )),
            Some((a, s)) if a < min => Some(format!(
                "its shadow agreed on {:.1}% of {} comparisons in the last {window_text}, below {:.1}%",
                a * 100.0,
                s.compared,
                min * 100.0
            )),
            Some(_) => None,
        };
        if let Some(why) = why {
            out.push(Diagnostic {
                severity: Severity::Error,
                file: route.file.clone(),
                line: route.line,
                column: 0,
                message: format!("route `{}`: {why}", route.id),
                hint: Some(format!(
                    "see `patina bridge report`; cut over once the answers agree (the log is {})",
                    config.bridge_log.display()
                )),
            });
        }
    }
    Ok(out)
}
