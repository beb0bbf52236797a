//! The tiberius client configuration of a SQL Server target: the ADO.NET connection string
//! first, then the separate fields, the TLS mode and which certificates to trust. Knows nothing
//! of pools or statements.

use tiberius::{AuthMethod, EncryptionLevel};

use crate::config::{Encrypt, MssqlTarget, Trust};

/// The client configuration for a target: the ADO.NET string first, then the fields.
pub fn client_config(t: &MssqlTarget) -> Result<tiberius::Config, String> {
    let mut c = match &t.ado {
        Some(ado) if !ado.expose().is_empty() => tiberius::Config::from_ado_string(ado.expose())
            .map_err(|e| {
                format!(
                    "the connection string is not valid: {}",
                    redact(&e.to_string())
                )
            })?,
        _ => tiberius::Config::new(),
    };
    // tiberius cuts any round trip after 30 s by default and leaves the connection unusable;
    // statement timeouts are the gateway's, enforced with an attention that keeps it.
    c.command_timeout(None);
    if let Some(h) = &t.host {
        c.host(h);
    }
    if let Some(p) = t.port {
        c.port(p);
    }
    if let Some(i) = &t.instance {
        c.instance_name(i);
    }
    if let Some(d) = &t.database {
        c.database(d);
    }
    match (&t.user, &t.password) {
        (Some(u), Some(p)) => c.authentication(AuthMethod::sql_server(u, p.expose())),
        (Some(u), None) => c.authentication(AuthMethod::sql_server(u, "")),
        _ => {}
    }
    let named_app = t.ado.as_ref().is_some_and(|a| {
        let l = a.expose().to_ascii_lowercase();
        l.contains("application name") || l.contains("applicationname")
    });
    match &t.application_name {
        Some(a) => c.application_name(a),
        None if !named_app => c.application_name("patina"),
        None => {}
    }
    match t.encrypt {
        Some(Encrypt::Required) => c.encryption(EncryptionLevel::Required),
        Some(Encrypt::Strict) => c.encryption(EncryptionLevel::Strict),
        Some(Encrypt::LoginOnly) => c.encryption(EncryptionLevel::Off),
        Some(Encrypt::Off) => c.encryption(EncryptionLevel::NotSupported),
        None => {}
    }
    match &t.trust {
        Some(Trust::Any) => c.trust_cert(),
        Some(Trust::CaFile(p)) => c.trust_cert_ca(p.display().to_string()),
        Some(Trust::System) | None => {}
    }
    Ok(c)
}

/// A message about a connection string, without the password's value.
fn redact(s: &str) -> String {
    crate::config::redact_connection_string(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_fields_and_from_ado() {
        let t = MssqlTarget {
            ado: None,
            host: Some("db.example".into()),
            port: Some(1444),
            instance: None,
            database: Some("ERP".into()),
            user: Some("svc".into()),
            password: Some(crate::secret::Secret::new("pw")),
            encrypt: Some(Encrypt::Strict),
            trust: None,
            application_name: None,
        };
        let c = client_config(&t).expect("config");
        assert_eq!(c.get_addr(), "db.example:1444");
        let t = MssqlTarget {
            ado: Some(crate::secret::Secret::new(
                "Server=tcp:legacy.example,1433;Database=ERP;User Id=svc;Password='p;w';Encrypt=true",
            )),
            host: None,
            port: None,
            instance: None,
            database: None,
            user: None,
            password: None,
            encrypt: None,
            trust: None,
            application_name: None,
        };
        assert_eq!(
            client_config(&t).expect("config").get_addr(),
            "legacy.example:1433"
        );
        let bad = MssqlTarget {
            ado: Some(crate::secret::Secret::new(
                "Server=tcp:h,notaport;Password=hunter2",
            )),
            ..t
        };
        let e = client_config(&bad).expect_err("bad port");
        assert!(!e.contains("hunter2"), "{e}");
    }
}
