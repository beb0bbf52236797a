//! What the database says a statement returns and takes — result columns with their SQL types,
//! parameters with the range of values the database accepts — and [`Learned`], the runtime
//! record of those facts per route of one catalog. Filled by describing statements on their
//! sources; read by the encoder (default codecs), the parameter check and the API documents.
//! Knows nothing of drivers or HTTP.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::codec::{ColumnType, DateFormat, TimeFormat};

/// What the database says a result column is, reduced to what decoding needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SqlType {
    Integer,
    Decimal {
        precision: usize,
        scale: i16,
    },
    Float,
    Boolean,
    Date,
    Time,
    Timestamp,
    Text,
    Binary,
    /// A type the gateway has no codec for; fetched as text.
    Unsupported(String),
}

impl SqlType {
    /// The codec an unmapped column (or a mapped one without `type`) gets.
    pub fn default_codec(&self) -> ColumnType {
        match self {
            Self::Integer => ColumnType::Integer,
            Self::Decimal { scale, precision } if *scale == 0 && *precision <= 18 => {
                ColumnType::Integer
            }
            Self::Decimal { .. } => ColumnType::Decimal {
                scale: None,
                as_string: false,
            },
            Self::Float => ColumnType::Number,
            Self::Boolean => ColumnType::Boolean {
                true_values: ColumnType::default_true_values(),
                false_values: ColumnType::default_false_values(),
            },
            Self::Date => ColumnType::Date(DateFormat::Iso),
            Self::Time => ColumnType::Time(TimeFormat::Iso),
            Self::Timestamp => ColumnType::DateTime,
            Self::Binary => ColumnType::Binary,
            Self::Text | Self::Unsupported(_) => ColumnType::String,
        }
    }

    /// Why a mapping's codec does not fit a column of this type (`check --db` warns), or
    /// `None` when it does. Only what will fail or mislead: a numeric date on a text or DATE
    /// column, an ISO date on a number, an exact decimal on a float, an integer on a column
    /// with decimals, a number codec on text.
    pub fn misfit(&self, ty: &ColumnType) -> Option<String> {
        let numeric = matches!(self, Self::Integer | Self::Decimal { .. } | Self::Float);
        match (ty, self) {
            (ColumnType::Date(f @ (DateFormat::Cyymmdd | DateFormat::Yyyymmdd)), Self::Date | Self::Timestamp) => Some(format!(
                "a `{}` date codec on a {} column, which the database already stores as a date",
                f.name(),
                self.name()
            )),
            (ColumnType::Date(f @ (DateFormat::Cyymmdd | DateFormat::Yyyymmdd)), Self::Float) => {
                Some(format!("a `{}` date codec on a floating-point column", f.name()))
            }
            (ColumnType::Date(DateFormat::Iso), _) if numeric => Some(
                "an ISO date codec on a numeric column: give it format = \"cyymmdd\" or \"yyyymmdd\"".into(),
            ),
            (ColumnType::Time(TimeFormat::Hhmmss), Self::Time | Self::Timestamp) => {
                Some("an `hhmmss` time codec on a column the database stores as a time".into())
            }
            (ColumnType::Decimal { .. }, Self::Float) => Some(
                "an exact decimal codec on a floating-point column: its digits are already rounded".into(),
            ),
            (ColumnType::Integer, Self::Decimal { scale, .. }) if *scale > 0 => Some(format!(
                "an integer codec on a column with {scale} decimal place(s): a fraction fails the request"
            )),
            (ColumnType::Integer, Self::Float) => {
                Some("an integer codec on a floating-point column".into())
            }
            (ColumnType::Integer | ColumnType::Number | ColumnType::Decimal { .. }, Self::Date | Self::Time | Self::Timestamp | Self::Binary | Self::Boolean) => {
                Some(format!("a number codec on a {} column", self.name()))
            }
            _ => None,
        }
    }

    /// The type's name in messages.
    pub fn name(&self) -> &str {
        match self {
            Self::Integer => "integer",
            Self::Decimal { .. } => "decimal",
            Self::Float => "floating-point",
            Self::Boolean => "boolean",
            Self::Date => "DATE",
            Self::Time => "TIME",
            Self::Timestamp => "TIMESTAMP",
            Self::Text => "text",
            Self::Binary => "binary",
            Self::Unsupported(t) => t,
        }
    }
}

/// One result column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    pub sql_type: SqlType,
    /// Whether the database lets it be NULL; `None` when the driver does not say.
    pub nullable: Option<bool>,
    /// Text columns: the declared length in characters, when the driver says.
    pub width: Option<usize>,
    /// Text columns: fixed width (`CHAR`), padded with spaces.
    pub fixed: bool,
}

/// The integers a parameter's SQL type holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IntRange {
    pub min: i64,
    pub max: i64,
    /// The SQL type's name, for messages (`INTEGER`, `SMALLINT`, `NUMERIC`).
    pub sql: &'static str,
    /// 32 for a 32-bit integer (documented as `int32`); `None` for other widths.
    pub bits: Option<u8>,
}

impl IntRange {
    pub const SMALLINT: Self = Self {
        min: i16::MIN as i64,
        max: i16::MAX as i64,
        sql: "SMALLINT",
        bits: None,
    };
    pub const INTEGER: Self = Self {
        min: i32::MIN as i64,
        max: i32::MAX as i64,
        sql: "INTEGER",
        bits: Some(32),
    };

    /// A `NUMERIC(p, 0)`/`DECIMAL(p, 0)`: up to `p` digits (unbounded past 18).
    pub fn digits(precision: usize) -> Option<Self> {
        let digits = u32::try_from(precision)
            .ok()
            .filter(|p| (1..=18).contains(p))?;
        let max = 10_i64.pow(digits) - 1;
        Some(Self {
            min: -max,
            max,
            sql: "NUMERIC",
            bits: None,
        })
    }

    pub fn contains(&self, v: i64) -> bool {
        (self.min..=self.max).contains(&v)
    }
}

/// What the database says one statement parameter takes; `range` is `None` when it does not
/// say, or says something the gateway does not check (text, floats).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParamShape {
    pub range: Option<IntRange>,
}

/// What a described statement returns and takes (parameters in placeholder order).
#[derive(Clone, Debug, Default)]
pub struct Described {
    pub columns: Vec<ColumnInfo>,
    pub params: Vec<ParamShape>,
}

/// What the databases said about each route of one catalog, by the route's index in it.
/// Filled once per route by the check that describes a catalog's routes when it starts
/// serving (at start-up and after each reload), then only read, without a lock.
#[derive(Debug)]
pub struct Learned {
    routes: Vec<tokio::sync::OnceCell<Arc<Described>>>,
    /// Bumped whenever a route is learned: the documents are rebuilt when it moved.
    version: AtomicU64,
}

impl Learned {
    pub fn new(routes: usize) -> Self {
        Self {
            routes: (0..routes).map(|_| tokio::sync::OnceCell::new()).collect(),
            version: AtomicU64::new(0),
        }
    }

    /// What is known of route `i`.
    pub fn get(&self, i: usize) -> Option<&Arc<Described>> {
        self.routes.get(i).and_then(tokio::sync::OnceCell::get)
    }

    /// Record what the database said of route `i` (the first word stays).
    pub fn set(&self, i: usize, described: Described) {
        if let Some(cell) = self.routes.get(i)
            && cell.set(Arc::new(described)).is_ok()
        {
            self.version.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// How many times something new was learned.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert!(IntRange::INTEGER.contains(2_147_483_647));
        assert!(!IntRange::INTEGER.contains(2_147_483_648));
        assert!(!IntRange::SMALLINT.contains(-32_769));
        let five = IntRange::digits(5).expect("bounded");
        assert!(five.contains(99_999) && !five.contains(100_000) && five.contains(-99_999));
        assert!(IntRange::digits(19).is_none(), "past i64: not checked here");
    }

    #[test]
    fn the_first_word_stays() {
        let learned = Learned::new(2);
        assert!(learned.get(0).is_none());
        assert_eq!(learned.version(), 0);
        learned.set(
            0,
            Described {
                columns: vec![ColumnInfo {
                    name: "A".into(),
                    sql_type: SqlType::Integer,
                    nullable: None,
                    width: None,
                    fixed: false,
                }],
                params: vec![],
            },
        );
        assert_eq!(learned.version(), 1);
        learned.set(0, Described::default());
        assert_eq!(
            learned.get(0).expect("kept").columns.len(),
            1,
            "first word stays"
        );
        assert_eq!(learned.version(), 1);
        learned.set(1, Described::default());
        assert_eq!(learned.version(), 2);
        learned.set(7, Described::default());
        assert!(learned.get(7).is_none());
        assert_eq!(learned.version(), 2);
    }

    #[test]
    fn codecs_that_do_not_fit_their_column_are_named() {
        use crate::codec::{ColumnType, DateFormat};
        let cyymmdd = ColumnType::Date(DateFormat::Cyymmdd);
        let dec = |precision, scale| SqlType::Decimal { precision, scale };
        assert!(
            SqlType::Date
                .misfit(&cyymmdd)
                .is_some_and(|m| m.contains("`cyymmdd`"))
        );
        assert!(dec(7, 0).misfit(&cyymmdd).is_none(), "the legacy form");
        assert!(
            dec(7, 0)
                .misfit(&ColumnType::Date(DateFormat::Iso))
                .is_some()
        );
        let exact = ColumnType::Decimal {
            scale: None,
            as_string: false,
        };
        assert!(SqlType::Float.misfit(&exact).is_some());
        assert!(dec(11, 3).misfit(&exact).is_none());
        assert!(dec(11, 3).misfit(&ColumnType::Integer).is_some());
        assert!(dec(9, 0).misfit(&ColumnType::Integer).is_none());
        assert!(SqlType::Text.misfit(&ColumnType::String).is_none());
        assert!(SqlType::Timestamp.misfit(&ColumnType::Integer).is_some());
    }
}
