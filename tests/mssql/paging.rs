//! Keyset pages on a `kind = "mssql"` source, at the protocol level: the statement SQL Server
//! receives for a first and a next page (NULL ordered last with a `CASE`, the predicate after
//! the cursor's row, `OFFSET 0 ROWS FETCH NEXT @Pn ROWS ONLY`), with the cursor's key values
//! and the limit bound as parameters, never spliced into the text.

use std::time::{Duration, Instant};

use mssql_mock_tds::{ColumnDefinition, ColumnValue, QueryResponse, Row, SqlDataType};

use super::recorder::{Bound, Recorder, Sent};
use super::{LOGINS_AT_START, Mock, gateway_at};

const PAGED: &str = r#"
source = "erp"

[[route]]
id = "pagedParts"
path = "/paged-parts"
public = true
sql = "SELECT ID, GRP FROM PARTS"
page = { by = ["GRP", "ID"], size = 2 }
columns.ID = { name = "id", type = "integer", nullable = false }
columns.GRP = { name = "group", type = "integer" }
"#;

const FIRST: &str = "SELECT KEYSET_PAGE.* FROM (\nSELECT ID, GRP FROM PARTS\n) KEYSET_PAGE\n\
ORDER BY CASE WHEN KEYSET_PAGE.GRP IS NULL THEN 1 ELSE 0 END ASC, KEYSET_PAGE.GRP ASC, KEYSET_PAGE.ID ASC\n\
OFFSET 0 ROWS FETCH NEXT @P1 ROWS ONLY";

const NEXT: &str = "SELECT KEYSET_PAGE.* FROM (\nSELECT ID, GRP FROM PARTS\n) KEYSET_PAGE\n\
WHERE (KEYSET_PAGE.GRP >= @P1 OR KEYSET_PAGE.GRP IS NULL)\n  \
AND (((KEYSET_PAGE.GRP > @P2 OR KEYSET_PAGE.GRP IS NULL))\n   \
OR (KEYSET_PAGE.GRP = @P3 AND KEYSET_PAGE.ID > @P4))\n\
ORDER BY CASE WHEN KEYSET_PAGE.GRP IS NULL THEN 1 ELSE 0 END ASC, KEYSET_PAGE.GRP ASC, KEYSET_PAGE.ID ASC\n\
OFFSET 0 ROWS FETCH NEXT @P5 ROWS ONLY";

fn rows(values: &[(i32, Option<i32>)]) -> QueryResponse {
    QueryResponse::new(
        vec![
            ColumnDefinition::new("ID", SqlDataType::Int),
            ColumnDefinition::new("GRP", SqlDataType::Int),
        ],
        values
            .iter()
            .map(|(id, g)| {
                Row::new(vec![
                    ColumnValue::Int(*id),
                    g.map_or(ColumnValue::Null, ColumnValue::Int),
                ])
            })
            .collect(),
    )
}

#[test]
fn pages_reach_sql_server_in_its_keyset_form_with_bound_keys() {
    let mock = Mock::start();
    mock.register(FIRST, rows(&[(1, Some(5)), (2, Some(5)), (3, Some(7))]));
    mock.register(NEXT, rows(&[(3, Some(7)), (4, None)]));
    let recorder = Recorder::start(mock.port);
    let dir = tempfile::tempdir().expect("dir");
    let mappings = dir.path().join("mappings/v1");
    std::fs::create_dir_all(&mappings).expect("mkdir");
    std::fs::write(mappings.join("paged.toml"), PAGED).expect("mapping");
    let gw = gateway_at(
        dir.path(),
        recorder.port,
        "host = \"127.0.0.1\"\nencrypt = \"off\"\npool = { max = 1 }",
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while mock.logins() < LOGINS_AT_START {
        assert!(Instant::now() < deadline, "logins: {}", mock.logins());
        std::thread::sleep(Duration::from_millis(20));
    }

    let mark = recorder.mark();
    let first = gw.anonymous("/v1/paged-parts");
    assert_eq!(
        first.status,
        200,
        "{}\n{:#?}",
        first.text,
        recorder.since(mark)
    );
    let body = first.json();
    assert_eq!(
        body["data"],
        serde_json::json!([{"id": 1, "group": 5}, {"id": 2, "group": 5}])
    );
    let cursor = body["next"].as_str().expect("a next page").to_string();
    let next = gw.anonymous(&format!("/v1/paged-parts?cursor={cursor}"));
    assert_eq!(next.status, 200, "{}", next.text);
    assert_eq!(
        next.json()["data"],
        serde_json::json!([{"id": 3, "group": 7}, {"id": 4, "group": null}])
    );
    let sent: Vec<Sent> = recorder
        .since(mark)
        .into_iter()
        .filter(
            |s| matches!(s, Sent::Statement { sql, .. } if sql.starts_with("SELECT KEYSET_PAGE")),
        )
        .collect();
    assert_eq!(
        sent,
        [
            Sent::Statement {
                sql: FIRST.into(),
                binds: vec![Bound::Int(Some(3))],
            },
            Sent::Statement {
                sql: NEXT.into(),
                binds: [5, 5, 5, 2, 3].map(|v| Bound::Int(Some(v))).to_vec(),
            },
        ]
    );
}
