//! Finding a driver's library in unixODBC's odbcinst.ini ourselves, for the one case where the
//! driver manager does not: it caches what it read from odbcinst.ini for 20 seconds per process,
//! and a lookup that once came back empty (seen now and then when a process opens its first
//! connections) makes every connection by driver name fail with "Can't open lib '<name>'" until
//! the entry expires. Given the library's path instead of its name, the driver manager loads it
//! without reading odbcinst.ini. unixODBC before 2.3.13 has this race between threads that
//! connect at the same time (Debian 12 ships 2.3.11), so it is met wherever a process opens
//! connections on several threads: the gateway's pool, and a test beside a running gateway.
//! [`connect`] is the one place that connects by connection string; the rest is text work.

use std::path::PathBuf;

use odbc_api::{Connection, ConnectionOptions};

/// Connect with `connection_string`. When the driver manager answers "Can't open lib" for a
/// driver named in odbcinst.ini, connect once more naming that library by its path. Returns
/// the connection and, when it was needed, the library named.
///
/// # Errors
/// The driver manager's or driver's error (of the second attempt when there was one).
pub fn connect(
    connection_string: &str,
    options: ConnectionOptions,
) -> Result<(Connection<'static>, Option<String>), odbc_api::Error> {
    let env = odbc_api::environment()?;
    match env.connect_with_connection_string(connection_string, options) {
        Err(e) if e.to_string().contains("Can't open lib") => {
            match driver_library(connection_string) {
                Some(library) => env
                    .connect_with_connection_string(
                        &with_driver(connection_string, &library),
                        options,
                    )
                    .map(|c| (c, Some(library))),
                None => Err(e),
            }
        }
        other => other.map(|c| (c, None)),
    }
}

/// The value of the `Driver` attribute of an ODBC connection string, without its braces.
pub fn driver_name(connection_string: &str) -> Option<&str> {
    attributes(connection_string)
        .find(|(k, _)| k.eq_ignore_ascii_case("driver"))
        .map(|(_, v)| v)
}

/// `connection_string` with its `Driver` attribute replaced by `library`.
pub fn with_driver(connection_string: &str, library: &str) -> String {
    let mut out = String::with_capacity(connection_string.len() + library.len());
    for (i, part) in split_attributes(connection_string).into_iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        match part.split_once('=') {
            Some((k, _)) if k.trim().eq_ignore_ascii_case("driver") => {
                out.push_str(k);
                out.push_str("={");
                out.push_str(library);
                out.push('}');
            }
            _ => out.push_str(part),
        }
    }
    out
}

/// The `Driver` library of section `[name]` in the odbcinst.ini text (sections and keys
/// compared without regard to case, as the driver manager does).
pub fn library_in(ini: &str, name: &str) -> Option<String> {
    let mut in_section = false;
    for line in ini.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_section = section.trim().eq_ignore_ascii_case(name);
            continue;
        }
        if in_section
            && let Some((k, v)) = line.split_once('=')
            && k.trim().eq_ignore_ascii_case("driver")
        {
            let v = v.trim();
            return (!v.is_empty()).then(|| v.to_string());
        }
    }
    None
}

/// The library of the driver `name` as the system odbcinst.ini names it (`$ODBCSYSINI`, else
/// `/etc`; `$ODBCINSTINI`, else `odbcinst.ini`). `None` when the connection string already names
/// a library by its path, or the file or entry is not there.
pub fn driver_library(connection_string: &str) -> Option<String> {
    let name = driver_name(connection_string)?;
    if name.contains('/') {
        return None;
    }
    let dir = std::env::var_os("ODBCSYSINI").map_or_else(|| PathBuf::from("/etc"), PathBuf::from);
    let file = std::env::var_os("ODBCINSTINI").unwrap_or_else(|| "odbcinst.ini".into());
    let ini = std::fs::read_to_string(dir.join(file)).ok()?;
    library_in(&ini, name)
}

/// `key=value` parts, braces around a value kept (`{a;b}` does not split).
fn split_attributes(s: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            ';' if depth == 0 => {
                parts.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&s[start..]);
    parts
}

fn attributes(s: &str) -> impl Iterator<Item = (&str, &str)> {
    split_attributes(s).into_iter().filter_map(|part| {
        let (k, v) = part.split_once('=')?;
        let v = v.trim();
        let v = v
            .strip_prefix('{')
            .and_then(|v| v.strip_suffix('}'))
            .unwrap_or(v);
        Some((k.trim(), v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const INI: &str = "[SQLite3]\nDescription=SQLite3 ODBC Driver\nDriver=/usr/lib/x86_64-linux-gnu/odbc/libsqlite3odbc.so\n\n\
                       [PostgreSQL Unicode]\n; a comment\nDescription=PostgreSQL\n driver = psqlodbcw.so \nDebug=0\n";

    #[test]
    fn finds_the_driver_name_with_or_without_braces() {
        assert_eq!(
            driver_name("Driver={PostgreSQL Unicode};Server=h;Pwd={a;b}"),
            Some("PostgreSQL Unicode")
        );
        assert_eq!(driver_name("DSN=x;DRIVER=SQLite3"), Some("SQLite3"));
        assert_eq!(driver_name("DSN=x"), None);
    }

    #[test]
    fn reads_the_library_of_a_section_without_regard_to_case() {
        assert_eq!(
            library_in(INI, "sqlite3").as_deref(),
            Some("/usr/lib/x86_64-linux-gnu/odbc/libsqlite3odbc.so")
        );
        assert_eq!(
            library_in(INI, "PostgreSQL Unicode").as_deref(),
            Some("psqlodbcw.so")
        );
        assert_eq!(library_in(INI, "FreeTDS"), None);
        assert_eq!(library_in("[SQLite3]\nDriver=\n", "SQLite3"), None);
    }

    #[test]
    fn replaces_only_the_driver_and_keeps_braced_values_whole() {
        assert_eq!(
            with_driver(
                "Driver={PostgreSQL Unicode};Server=h;Pwd={a;b=c}",
                "/lib/psqlodbcw.so"
            ),
            "Driver={/lib/psqlodbcw.so};Server=h;Pwd={a;b=c}"
        );
        assert_eq!(
            with_driver("DSN=x;driver=SQLite3;Database=/tmp/d.db", "/l.so"),
            "DSN=x;driver={/l.so};Database=/tmp/d.db"
        );
    }
}
