//! `patina check` on a broken `patina.toml`: every mistake in the file is printed in one run,
//! each with its file, line and column, and the exit status says it failed.

mod common;

#[test]
fn check_reports_every_mistake_in_the_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = "[server]\nlisten = \"127.0.0.1:0\"\nport = 1\n\n\
                  [sources.a]\nkind = \"odbc\"\ndialect = \"sqlite\"\nconnection_string = \"DSN=a\"\n\
                  login_timeout = \"2 days\"\n\n\
                  [sources.b]\nkind = \"odbc\"\ndialect = \"sqlite\"\nconnection_string = \"DSN=b\"\n\
                  encrypt = \"strict\"\n";
    std::fs::write(dir.path().join("patina.toml"), config).expect("config");
    let ran = common::patina(&["check", "--config", "patina.toml"], dir.path());
    let stderr = &ran.err;
    assert_eq!(ran.code, Some(2), "errors: {stderr}");
    for want in [
        "patina.toml:3:1: error: unknown field `port`",
        "patina.toml:9:17: error: source `a`: `login_timeout` is not a duration",
        "hint: write it like \"500ms\", \"5s\", \"1m\" or \"2h\" (units: ms, s, m, h)",
        "patina.toml:15:1: error: source `b`: `encrypt` is not an option of kind = \"odbc\" sources",
        "hint: `encrypt` is an option of kind = \"mssql\" sources; this source is kind = \"odbc\"",
        "3 errors found",
    ] {
        assert!(stderr.contains(want), "missing `{want}` in:\n{stderr}");
    }
}
