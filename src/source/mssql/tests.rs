//! Unit tests of the SQL Server source's value translation: every TDS type into the cell the
//! codecs read, result column types, parameters and their markers.

use super::values::*;
use super::*;
use crate::codec::{BindKind, BindValue, Cell};
use crate::shape::SqlType;
use std::borrow::Cow;
use tiberius::Uuid;
use tiberius::numeric::Numeric;
use tiberius::time::{Date, DateTime, DateTime2, DateTimeOffset, SmallDateTime, Time};
use tiberius::{ColumnData, ColumnType, Query};

/// What a value became, seen as text: null, text (typed values in their text form, which is
/// what a text source would have sent), or bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rendered {
    Null,
    Text,
    Binary,
}

/// The cell of one value, written out as text (or bytes) into `out`.
fn render(ty: ColumnType, data: &ColumnData<'_>, out: &mut Vec<u8>) -> Result<Rendered, String> {
    let mut buf = Vec::new();
    let cell = to_cell(ty, data, &mut buf)?;
    Ok(match cell {
        Cell::Null => Rendered::Null,
        Cell::Binary(b) => {
            out.extend_from_slice(b);
            Rendered::Binary
        }
        Cell::Text(b) => {
            out.extend_from_slice(b);
            Rendered::Text
        }
        typed => {
            let mut text = String::new();
            typed.write_text(&mut text).map_err(|e| e.to_string())?;
            out.extend_from_slice(text.as_bytes());
            Rendered::Text
        }
    })
}

#[allow(clippy::needless_pass_by_value)]
fn show(ty: ColumnType, data: ColumnData<'static>) -> (Rendered, String) {
    let mut out = Vec::new();
    let k = render(ty, &data, &mut out).expect("renders");
    (k, String::from_utf8_lossy(&out).into_owned())
}

fn txt(ty: ColumnType, data: ColumnData<'static>) -> String {
    let (k, s) = show(ty, data);
    assert_eq!(k, Rendered::Text);
    s
}

#[test]
fn integers_and_bits() {
    assert_eq!(txt(ColumnType::Int1, ColumnData::U8(Some(255))), "255");
    assert_eq!(
        txt(ColumnType::Int2, ColumnData::I16(Some(-32768))),
        "-32768"
    );
    assert_eq!(txt(ColumnType::Int4, ColumnData::I32(Some(7))), "7");
    assert_eq!(
        txt(ColumnType::Int8, ColumnData::I64(Some(i64::MIN))),
        "-9223372036854775808"
    );
    assert_eq!(txt(ColumnType::Bitn, ColumnData::Bit(Some(true))), "1");
    assert_eq!(txt(ColumnType::Bitn, ColumnData::Bit(Some(false))), "0");
}

#[test]
fn decimals_keep_every_digit() {
    let n = |v: i128, s: u8| {
        txt(
            ColumnType::Numericn,
            ColumnData::Numeric(Some(Numeric::new_with_scale(v, s))),
        )
    };
    assert_eq!(n(123, 0), "123");
    assert_eq!(n(-5, 3), "-0.005");
    assert_eq!(n(1_050, 2), "10.50");
    assert_eq!(
        n(99_999_999_999_999_999_999_999_999_999_999_999_999, 10),
        "9999999999999999999999999999.9999999999"
    );
    assert_eq!(
        n(-12_345_678_901_234_567_890_123_456_789_012_345_678, 0),
        "-12345678901234567890123456789012345678"
    );
}

#[test]
fn money_exact_or_refused() {
    assert_eq!(
        txt(ColumnType::Money, ColumnData::F64(Some(1.2345))),
        "1.2345"
    );
    assert_eq!(
        txt(ColumnType::Money4, ColumnData::F64(Some(214_748.364_7))),
        "214748.3647"
    );
    assert_eq!(
        txt(
            ColumnType::Money,
            ColumnData::F64(Some(-99_999_999_999.999_9))
        ),
        "-99999999999.9999"
    );
    let mut out = Vec::new();
    let e = render(
        ColumnType::Money,
        &ColumnData::F64(Some(922_337_203_685_477.6)),
        &mut out,
    )
    .expect_err("too large to be exact");
    assert!(e.contains("decimal(19,4)"), "{e}");
}

#[test]
fn floats() {
    assert_eq!(txt(ColumnType::Float4, ColumnData::F32(Some(0.1))), "0.1");
    assert_eq!(
        txt(ColumnType::Float8, ColumnData::F64(Some(1e300))),
        "1e300"
    );
    assert_eq!(txt(ColumnType::Float8, ColumnData::F64(Some(-2.5))), "-2.5");
    let mut out = Vec::new();
    assert!(
        render(
            ColumnType::Float8,
            &ColumnData::F64(Some(f64::NAN)),
            &mut out
        )
        .is_err()
    );
}

#[test]
fn strings_guids_binary_xml() {
    assert_eq!(
        txt(
            ColumnType::BigChar,
            ColumnData::String(Some("AB   ".into()))
        ),
        "AB   "
    );
    assert_eq!(
        txt(
            ColumnType::NVarchar,
            ColumnData::String(Some("Zoë ✓".into()))
        ),
        "Zoë ✓"
    );
    let g = Uuid::parse_str("6f9619ff-8b86-d011-b42d-00c04fc964ff").expect("uuid");
    assert_eq!(
        txt(ColumnType::Guid, ColumnData::Guid(Some(g))),
        "6F9619FF-8B86-D011-B42D-00C04FC964FF"
    );
    let (k, s) = show(
        ColumnType::BigVarBin,
        ColumnData::Binary(Some(vec![0xde, 0xad].into())),
    );
    assert_eq!((k, s.as_bytes()), (Rendered::Binary, &[0xde, 0xad][..]));
    let x = tiberius::xml::XmlData::new("<a>1</a>");
    assert_eq!(
        txt(ColumnType::Xml, ColumnData::Xml(Some(Cow::Owned(x)))),
        "<a>1</a>"
    );
}

#[test]
fn dates_and_times() {
    assert_eq!(
        txt(ColumnType::Daten, ColumnData::Date(Some(Date::new(0)))),
        "0001-01-01"
    );
    assert_eq!(
        txt(
            ColumnType::Daten,
            ColumnData::Date(Some(Date::new(3_652_058)))
        ),
        "9999-12-31"
    );
    assert_eq!(
        txt(
            ColumnType::Timen,
            ColumnData::Time(Some(Time::new(452_961_234_567, 7)))
        ),
        "12:34:56.1234567"
    );
    assert_eq!(
        txt(
            ColumnType::Timen,
            ColumnData::Time(Some(Time::new(3_600, 0)))
        ),
        "01:00:00"
    );
    let dt2 = DateTime2::new(Date::new(738_885), Time::new(452_961_234_567, 7));
    assert_eq!(
        txt(ColumnType::Datetime2, ColumnData::DateTime2(Some(dt2))),
        "2024-01-01 12:34:56.1234567"
    );
    assert_eq!(
        txt(
            ColumnType::DatetimeOffsetn,
            ColumnData::DateTimeOffset(Some(DateTimeOffset::new(dt2, 330)))
        ),
        "2024-01-01 18:04:56.1234567 +05:30"
    );
    // UTC 01:00 on Jan 1st is 17:00 on Dec 31st at -08:00.
    let early = DateTime2::new(Date::new(738_885), Time::new(3_600, 0));
    assert_eq!(
        txt(
            ColumnType::DatetimeOffsetn,
            ColumnData::DateTimeOffset(Some(DateTimeOffset::new(early, -480)))
        ),
        "2023-12-31 17:00:00 -08:00"
    );
    assert_eq!(
        txt(
            ColumnType::Datetime,
            ColumnData::DateTime(Some(DateTime::new(0, 0)))
        ),
        "1900-01-01 00:00:00.000"
    );
    assert_eq!(
        txt(
            ColumnType::Datetime,
            ColumnData::DateTime(Some(DateTime::new(-53_690, 25_919_999)))
        ),
        "1753-01-01 23:59:59.997"
    );
    assert_eq!(
        txt(
            ColumnType::Datetime4,
            ColumnData::SmallDateTime(Some(SmallDateTime::new(45_000, 61)))
        ),
        "2023-03-17 01:01:00"
    );
}

#[test]
fn null_of_every_type() {
    let nulls = [
        ColumnData::U8(None),
        ColumnData::I16(None),
        ColumnData::I32(None),
        ColumnData::I64(None),
        ColumnData::F32(None),
        ColumnData::F64(None),
        ColumnData::Bit(None),
        ColumnData::String(None),
        ColumnData::Guid(None),
        ColumnData::Binary(None),
        ColumnData::Numeric(None),
        ColumnData::Xml(None),
        ColumnData::DateTime(None),
        ColumnData::SmallDateTime(None),
        ColumnData::Time(None),
        ColumnData::Date(None),
        ColumnData::DateTime2(None),
        ColumnData::DateTimeOffset(None),
    ];
    for n in nulls {
        let (k, s) = show(ColumnType::Null, n);
        assert_eq!((k, s.as_str()), (Rendered::Null, ""));
    }
}

/// Rendered text goes through the same codecs as every other source's.
#[test]
fn rendered_text_decodes_with_the_default_codecs() {
    use crate::codec::ColumnCodec;
    let cases: Vec<(ColumnType, ColumnData<'static>, &str)> = vec![
        (ColumnType::Bitn, ColumnData::Bit(Some(true)), "true"),
        (
            ColumnType::Numericn,
            ColumnData::Numeric(Some(Numeric::new_with_scale(1_050, 2))),
            "10.50",
        ),
        (ColumnType::Money, ColumnData::F64(Some(12.5)), "12.5000"),
        (
            ColumnType::Daten,
            ColumnData::Date(Some(Date::new(738_885))),
            "\"2024-01-01\"",
        ),
        (
            ColumnType::Datetime,
            ColumnData::DateTime(Some(DateTime::new(45_000, 300))),
            "\"2023-03-17T00:00:01\"",
        ),
        (
            ColumnType::DatetimeOffsetn,
            ColumnData::DateTimeOffset(Some(DateTimeOffset::new(
                DateTime2::new(Date::new(738_885), Time::new(0, 0)),
                60,
            ))),
            "\"2024-01-01T01:00:00+01:00\"",
        ),
        (ColumnType::Float8, ColumnData::F64(Some(0.25)), "0.25"),
        (ColumnType::Int8, ColumnData::I64(Some(-3)), "-3"),
    ];
    for (ty, data, want) in cases {
        let mut buf = Vec::new();
        let cell = to_cell(ty, &data, &mut buf).expect("converts");
        let codec = ColumnCodec::new(sql_type(ty).default_codec());
        let mut out = Vec::new();
        codec.write_json(cell, &mut out).expect("decodes");
        assert_eq!(String::from_utf8_lossy(&out), want, "{ty:?}");
        // The same JSON as the value's text form, as a text source would have sent it.
        let mut text = Vec::new();
        render(ty, &data, &mut text).expect("renders");
        let mut from_text = Vec::new();
        codec
            .write_json(Cell::Text(&text), &mut from_text)
            .expect("decodes");
        assert_eq!(out, from_text, "{ty:?}");
    }
}

/// Numbers, bits, decimals and money stay typed on the way to the codecs.
#[test]
fn typed_values_stay_typed() {
    let cell = |ty: ColumnType, data: ColumnData<'static>| {
        let mut buf = Vec::new();
        let c = to_cell(ty, &data, &mut buf).expect("converts");
        assert!(!matches!(c, Cell::Text(_)), "{ty:?} became text");
        format!("{c:?}")
    };
    assert_eq!(
        cell(ColumnType::Int1, ColumnData::U8(Some(255))),
        "Int(255)"
    );
    assert_eq!(
        cell(ColumnType::Int8, ColumnData::I64(Some(i64::MIN))),
        format!("Int({})", i64::MIN)
    );
    assert_eq!(
        cell(ColumnType::Bitn, ColumnData::Bit(Some(true))),
        "Bool(true)"
    );
    assert_eq!(
        cell(
            ColumnType::Numericn,
            ColumnData::Numeric(Some(Numeric::new_with_scale(
                -99_999_999_999_999_999_999_999_999_999_999_999_999,
                38
            )))
        ),
        "Decimal { digits: -99999999999999999999999999999999999999, scale: 38 }"
    );
    assert_eq!(
        cell(
            ColumnType::Money,
            ColumnData::F64(Some(-99_999_999_999.999_9))
        ),
        "Decimal { digits: -999999999999999, scale: 4 }"
    );
    assert_eq!(
        cell(ColumnType::Money4, ColumnData::F64(Some(214_748.364_7))),
        "Decimal { digits: 2147483647, scale: 4 }"
    );
    assert_eq!(
        cell(ColumnType::Float4, ColumnData::F32(Some(0.1))),
        "Float(0.1)"
    );
}

/// A bit into a flag column, an integer into a code column, money into a decimal column.
#[test]
fn typed_values_meet_mapped_codecs() {
    use crate::codec::{ColumnCodec, ColumnType as Json, UnknownCode};
    let json = |codec: &ColumnCodec, ty: ColumnType, data: ColumnData<'static>| {
        let mut buf = Vec::new();
        let cell = to_cell(ty, &data, &mut buf).expect("converts");
        let mut out = Vec::new();
        codec.write_json(cell, &mut out).expect("decodes");
        String::from_utf8(out).expect("utf8")
    };
    let flag = ColumnCodec::new(Json::Boolean {
        true_values: vec!["Y".into()],
        false_values: vec!["N".into()],
    });
    assert_eq!(
        json(&flag, ColumnType::Bitn, ColumnData::Bit(Some(false))),
        "false"
    );
    let code = ColumnCodec::new(Json::Code {
        codes: vec![("3".into(), "shipped".into())],
        unknown: UnknownCode::Raw,
    });
    assert_eq!(
        json(&code, ColumnType::Int2, ColumnData::I16(Some(3))),
        "\"shipped\""
    );
    assert_eq!(
        json(&code, ColumnType::Int2, ColumnData::I16(Some(4))),
        "\"4\""
    );
    let money = ColumnCodec::new(Json::Decimal {
        scale: Some(2),
        as_string: true,
    });
    assert_eq!(
        json(&money, ColumnType::Money, ColumnData::F64(Some(-0.01))),
        "\"-0.0100\""
    );
    let int = ColumnCodec::new(Json::Integer);
    assert_eq!(
        json(
            &int,
            ColumnType::Numericn,
            ColumnData::Numeric(Some(Numeric::new_with_scale(-4_200, 2)))
        ),
        "-42"
    );
}

#[test]
fn types_without_a_codec_are_named() {
    assert!(matches!(sql_type(ColumnType::Udt), SqlType::Unsupported(_)));
    assert!(matches!(
        sql_type(ColumnType::SSVariant),
        SqlType::Unsupported(_)
    ));
    assert_eq!(
        sql_type_named("geography"),
        SqlType::Unsupported("geography (a CLR or user-defined type)".into())
    );
    assert_eq!(
        sql_type_named("decimal(9,2)"),
        SqlType::Decimal {
            precision: 9,
            scale: 2
        }
    );
    assert_eq!(sql_type_named("nvarchar(40)"), SqlType::Text);
    assert_eq!(sql_type_named("datetimeoffset(7)"), SqlType::Timestamp);
    assert_eq!(sql_type_named("BIGINT"), SqlType::Integer);
}

#[test]
fn parameters_are_sent_with_their_types() {
    assert_eq!(to_sql(&BindValue::Int(-7)), ColumnData::I64(Some(-7)));
    assert_eq!(to_sql(&BindValue::Float(2.5)), ColumnData::F64(Some(2.5)));
    assert_eq!(
        to_sql(&BindValue::Text("Zoë".into())),
        ColumnData::String(Some(Cow::Borrowed("Zoë")))
    );
    assert_eq!(
        to_sql(&BindValue::Null(BindKind::Int)),
        ColumnData::I64(None)
    );
    assert_eq!(
        to_sql(&BindValue::Null(BindKind::Float)),
        ColumnData::F64(None)
    );
    assert_eq!(
        to_sql(&BindValue::Null(BindKind::Text)),
        ColumnData::String(None)
    );
    let values = [BindValue::Int(1), BindValue::Null(BindKind::Text)];
    let mut q = Query::new("SELECT @P1, @P2");
    for v in &values {
        q.bind(to_sql(v));
    }
    assert_eq!(q.param_count(), 2);
}

#[test]
fn params_are_counted_from_markers() {
    assert_eq!(param_count("SELECT 1"), 0);
    assert_eq!(
        param_count("SELECT a FROM t WHERE a = @P1 AND (@P2 IS NULL OR b = @P2)"),
        2
    );
    assert_eq!(param_count("SELECT @P10, @P9"), 10);
}
