//! Values between the gateway and TDS: bound parameters as typed TDS values, the decoding type
//! of a result column (from its TDS type or from the type name the server describes), and every
//! TDS value as the cell the shared codecs decode: numbers, bits, decimals and money stay typed;
//! dates, times, GUIDs and XML become text in SQL Server's notation. Knows nothing of
//! connections.

use tiberius::time::{Date, DateTime, DateTime2, DateTimeOffset, SmallDateTime, Time};
use tiberius::{ColumnData, ColumnType};

use crate::clock::civil_from_days;
use crate::codec::{BindKind, BindValue, Cell, write_display};
use crate::shape::SqlType;

/// The value a parameter is sent as: bigint, float or nvarchar, typed NULLs included.
pub(super) fn to_sql(v: &BindValue) -> ColumnData<'_> {
    match v {
        BindValue::Int(i) => ColumnData::I64(Some(*i)),
        BindValue::Float(f) => ColumnData::F64(Some(*f)),
        BindValue::Text(t) => ColumnData::String(Some(std::borrow::Cow::Borrowed(t.as_str()))),
        BindValue::Null(BindKind::Int) => ColumnData::I64(None),
        BindValue::Null(BindKind::Float) => ColumnData::F64(None),
        BindValue::Null(BindKind::Text) => ColumnData::String(None),
    }
}

/// The decoding type of a result column, from its TDS type.
pub fn sql_type(t: ColumnType) -> SqlType {
    use ColumnType as T;
    match t {
        T::Bit | T::Bitn => SqlType::Boolean,
        T::Int1 | T::Int2 | T::Int4 | T::Int8 | T::Intn => SqlType::Integer,
        // The TDS metadata tiberius exposes carries no precision or scale: keep every digit.
        T::Decimaln | T::Numericn | T::Money | T::Money4 => SqlType::Decimal {
            precision: 38,
            scale: 38,
        },
        T::Float4 | T::Float8 | T::Floatn => SqlType::Float,
        T::Daten => SqlType::Date,
        T::Timen => SqlType::Time,
        T::Datetime | T::Datetime4 | T::Datetimen | T::Datetime2 | T::DatetimeOffsetn => {
            SqlType::Timestamp
        }
        T::BigBinary | T::BigVarBin | T::Image => SqlType::Binary,
        T::Guid
        | T::BigChar
        | T::BigVarChar
        | T::NChar
        | T::NVarchar
        | T::Text
        | T::NText
        | T::Xml
        | T::Null => SqlType::Text,
        T::Udt => SqlType::Unsupported(
            "a CLR user-defined type (geography, geometry, hierarchyid)".into(),
        ),
        T::SSVariant => SqlType::Unsupported("sql_variant".into()),
    }
}

/// The decoding type of a column from the name `sp_describe_first_result_set` reports
/// (`decimal(9,2)`, `nvarchar(40)`, `geography`).
pub fn sql_type_named(name: &str) -> SqlType {
    let lower = name.to_ascii_lowercase();
    let (base, args) = match lower.split_once('(') {
        Some((b, a)) => (b.trim(), a.trim_end_matches(')')),
        None => (lower.trim(), ""),
    };
    let mut nums = args.split(',').map(|n| n.trim().parse::<usize>().ok());
    match base {
        "bit" => SqlType::Boolean,
        "tinyint" | "smallint" | "int" | "bigint" => SqlType::Integer,
        "decimal" | "numeric" => {
            let precision = nums.next().flatten().unwrap_or(18);
            let scale = nums.next().flatten().unwrap_or(0);
            SqlType::Decimal {
                precision,
                scale: i16::try_from(scale).unwrap_or(0),
            }
        }
        "money" => SqlType::Decimal {
            precision: 19,
            scale: 4,
        },
        "smallmoney" => SqlType::Decimal {
            precision: 10,
            scale: 4,
        },
        "float" | "real" => SqlType::Float,
        "date" => SqlType::Date,
        "time" => SqlType::Time,
        "datetime" | "smalldatetime" | "datetime2" | "datetimeoffset" => SqlType::Timestamp,
        "binary" | "varbinary" | "image" | "timestamp" | "rowversion" => SqlType::Binary,
        "char" | "varchar" | "nchar" | "nvarchar" | "text" | "ntext" | "xml"
        | "uniqueidentifier" | "sysname" => SqlType::Text,
        "sql_variant" => SqlType::Unsupported("sql_variant".into()),
        other => SqlType::Unsupported(format!("{other} (a CLR or user-defined type)")),
    }
}

/// Days from 0001-01-01 to 1970-01-01.
const DAYS_0001_TO_1970: i64 = 719_162;
/// Days from 0001-01-01 to 1900-01-01, where `datetime` counts from.
const DAYS_0001_TO_1900: i64 = 693_595;
/// Beyond this, a money value (sent as a scaled 64-bit integer, handed over as a double) may
/// have lost its last digits.
const MONEY_EXACT_BELOW: f64 = 100_000_000_000.0;

/// One value as the cell the codecs read. Numbers, bits and decimals stay typed (money as an
/// exact decimal of scale 4, a `real` as the double its shortest text names); strings and
/// bytes are borrowed as they are; the rest is written into `buf` as text in SQL Server's own
/// notation: `YYYY-MM-DD hh:mm:ss.fffffff`, a `±hh:mm` offset, an upper-case GUID.
pub fn to_cell<'a>(
    ty: ColumnType,
    data: &'a ColumnData<'_>,
    buf: &'a mut Vec<u8>,
) -> Result<Cell<'a>, String> {
    use ColumnData as C;
    let text = |buf: &'a mut Vec<u8>, s: &dyn std::fmt::Display| {
        write_display(buf, s);
        Ok(Cell::Text(buf))
    };
    match data {
        C::U8(Some(v)) => Ok(Cell::Int(i64::from(*v))),
        C::I16(Some(v)) => Ok(Cell::Int(i64::from(*v))),
        C::I32(Some(v)) => Ok(Cell::Int(i64::from(*v))),
        C::I64(Some(v)) => Ok(Cell::Int(*v)),
        C::Bit(Some(v)) => Ok(Cell::Bool(*v)),
        C::F64(Some(v)) if matches!(ty, ColumnType::Money | ColumnType::Money4) => money(*v),
        C::F32(Some(v)) => finite(f64::from(*v)).map(|()| Cell::Float(widen(*v))),
        C::F64(Some(v)) => finite(*v).map(|()| Cell::Float(*v)),
        C::Numeric(Some(n)) => Ok(Cell::Decimal {
            digits: n.value(),
            scale: n.scale(),
        }),
        C::String(Some(s)) => Ok(Cell::Text(s.as_bytes())),
        C::Guid(Some(g)) => text(buf, &g.hyphenated().to_string().to_uppercase()),
        C::Binary(Some(b)) => Ok(Cell::Binary(b)),
        C::Xml(Some(x)) => text(buf, &x.as_ref().to_string()),
        C::DateTime(Some(v)) => text(buf, &datetime(*v)),
        C::SmallDateTime(Some(v)) => text(buf, &smalldatetime(*v)),
        C::Date(Some(v)) => text(buf, &date(*v)),
        C::Time(Some(v)) => text(buf, &time(*v)),
        C::DateTime2(Some(v)) => text(buf, &datetime2(*v)),
        C::DateTimeOffset(Some(v)) => text(buf, &datetimeoffset(*v)),
        C::U8(None)
        | C::I16(None)
        | C::I32(None)
        | C::I64(None)
        | C::F32(None)
        | C::F64(None)
        | C::Bit(None)
        | C::String(None)
        | C::Guid(None)
        | C::Binary(None)
        | C::Numeric(None)
        | C::Xml(None)
        | C::DateTime(None)
        | C::SmallDateTime(None)
        | C::Time(None)
        | C::Date(None)
        | C::DateTime2(None)
        | C::DateTimeOffset(None) => Ok(Cell::Null),
    }
}

/// Money travels as a 64-bit count of ten-thousandths, which the client hands over divided into
/// a double: below [`MONEY_EXACT_BELOW`] the count comes back exactly.
fn money(v: f64) -> Result<Cell<'static>, String> {
    if v.abs() >= MONEY_EXACT_BELOW {
        return Err(format!(
            "a money value of {v:.0} cannot be read exactly by this client; \
             CAST the column AS decimal(19,4) in the SQL"
        ));
    }
    // Within ±10^15 ten-thousandths: the rounded count fits, and is the one that was sent.
    #[allow(clippy::cast_possible_truncation)]
    let digits = (v * 10_000.0).round() as i128;
    Ok(Cell::Decimal { digits, scale: 4 })
}

/// A `real` as the double its shortest text names (`0.1`, not `0.10000000149011612`), as a
/// text source would have handed it over.
fn widen(v: f32) -> f64 {
    format!("{v:?}").parse().unwrap_or(f64::from(v))
}

fn finite(v: f64) -> Result<(), String> {
    if v.is_finite() {
        Ok(())
    } else {
        Err("the float is not finite".into())
    }
}

fn ymd(days_since_0001: i64) -> String {
    let (y, m, d) = civil_from_days(days_since_0001 - DAYS_0001_TO_1970);
    format!("{y:04}-{m:02}-{d:02}")
}

fn date(d: Date) -> String {
    ymd(i64::from(d.days()))
}

fn time(t: Time) -> String {
    let scale = u32::from(t.scale());
    let per_sec = 10u64.pow(scale);
    let (secs, frac) = (t.increments() / per_sec, t.increments() % per_sec);
    let hms = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if scale == 0 {
        hms
    } else {
        format!("{hms}.{frac:0width$}", width = scale as usize)
    }
}

fn datetime2(d: DateTime2) -> String {
    format!("{} {}", date(d.date()), time(d.time()))
}

/// The wire carries UTC and the offset: show the local wall-clock time with its offset.
fn datetimeoffset(d: DateTimeOffset) -> String {
    let utc = d.datetime2();
    let scale = u32::from(utc.time().scale());
    let per_minute = 60 * i128::from(10u64.pow(scale));
    let per_day = 1440 * per_minute;
    let local = i128::from(utc.date().days()) * per_day
        + i128::from(utc.time().increments())
        + i128::from(d.offset()) * per_minute;
    let days = local.div_euclid(per_day);
    let ticks = local.rem_euclid(per_day);
    let wall = DateTime2::new(
        Date::new(u32::try_from(days).unwrap_or(0)),
        Time::new(
            u64::try_from(ticks).unwrap_or(0),
            u8::try_from(scale).unwrap_or(7),
        ),
    );
    let o = d.offset();
    let sign = if o < 0 { '-' } else { '+' };
    format!(
        "{} {sign}{:02}:{:02}",
        datetime2(wall),
        o.unsigned_abs() / 60,
        o.unsigned_abs() % 60
    )
}

/// `datetime` counts days from 1900-01-01 and 1/300 s ticks; SQL Server shows milliseconds
/// rounded to .000, .003 or .007.
fn datetime(d: DateTime) -> String {
    let ms = (u64::from(d.seconds_fragments()) * 10 + 1) / 3;
    let (s, ms) = (ms / 1000, ms % 1000);
    format!(
        "{} {:02}:{:02}:{:02}.{ms:03}",
        ymd(DAYS_0001_TO_1900 + i64::from(d.days())),
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// `smalldatetime` counts days from 1900-01-01 and minutes.
fn smalldatetime(d: SmallDateTime) -> String {
    let m = d.seconds_fragments();
    format!(
        "{} {:02}:{:02}:00",
        ymd(DAYS_0001_TO_1900 + i64::from(d.days())),
        m / 60,
        m % 60
    )
}
