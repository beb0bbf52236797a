//! `${VAR}` expansion from the environment, and redaction of connection strings for logs: the
//! two places where config text meets secrets. Pure functions; the caller supplies the
//! environment lookup.

/// Replace `${VAR}` and `${VAR:-default}`; `$${` stands for a literal `${`. On failure, the
/// names of every missing variable.
pub fn expand_env(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, Vec<String>> {
    let mut out = String::with_capacity(s.len());
    let mut missing = Vec::new();
    let mut rest = s;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(literal) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = literal;
        } else if let Some(body) = after.strip_prefix("${") {
            let Some(end) = body.find('}') else {
                out.push_str(after);
                rest = "";
                break;
            };
            let inner = &body[..end];
            let (var, default) = match inner.split_once(":-") {
                Some((v, d)) => (v, Some(d)),
                None => (inner, None),
            };
            match (env(var).filter(|v| !v.is_empty()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => missing.push(var.to_string()),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    if missing.is_empty() {
        Ok(out)
    } else {
        Err(missing)
    }
}

/// `value` with `${VAR}` expanded; a variable that is not set is an error at the value's place
/// in the file, said of `what` (the setting, e.g. "`server.listen`").
pub(super) fn expand_at(
    file: &crate::diag::SourceFile,
    value: &toml::Spanned<String>,
    what: &str,
    env: &dyn Fn(&str) -> Option<String>,
    diags: &mut crate::diag::Diagnostics,
) -> Option<String> {
    match expand_env(value.get_ref(), env) {
        Ok(s) => Some(s),
        Err(missing) => {
            diags.error_hint(
                file,
                value.span(),
                format!(
                    "{what}: environment variable{} {} not set",
                    if missing.len() == 1 { "" } else { "s" },
                    missing
                        .iter()
                        .map(|m| format!("`{m}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "export it before starting, or give a default: ${VAR:-value}",
            );
            None
        }
    }
}

/// A connection string with password-like attributes replaced, for logs.
pub fn redact_connection_string(s: &str) -> String {
    s.split(';')
        .map(|part| match part.split_once('=') {
            Some((k, _))
                if matches!(
                    k.trim().to_ascii_lowercase().as_str(),
                    "pwd" | "password" | "passwd" | "authentication" | "accesstoken"
                ) =>
            {
                format!("{k}=***")
            }
            _ => part.to_string(),
        })
        .collect::<Vec<_>>()
        .join(";")
}
