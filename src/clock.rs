//! The calendar and the wall clock, once: days since 1970-01-01 to and from a civil date
//! (proleptic Gregorian), today's date and the current instant as RFC 3339 text. A leaf: it
//! imports nothing from the crate. Parsing and formatting of stored dates belong to the codecs.

use std::time::SystemTime;

/// Days since 1970-01-01 of a calendar date (proleptic Gregorian).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The civil date of a day count since 1970-01-01 (the inverse of [`days_from_civil`]).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Seconds since the epoch, now (0 if the clock is before 1970).
fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Today's date (UTC) as `YYYY-MM-DD`.
pub fn today() -> String {
    let days = i64::try_from(now_secs() / 86_400).unwrap_or(0);
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The current instant (UTC, whole seconds) as `YYYY-MM-DDThh:mm:ssZ`.
pub fn now_rfc3339() -> String {
    rfc3339(now_secs())
}

/// Seconds since the UNIX epoch as `YYYY-MM-DDThh:mm:ssZ`.
fn rfc3339(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Milliseconds since the UNIX epoch as `YYYY-MM-DDThh:mm:ss.mmmZ`.
pub fn rfc3339_ms(ms: u64) -> String {
    let text = rfc3339(ms / 1000);
    format!("{}.{:03}Z", &text[..text.len() - 1], ms % 1000)
}

/// Now, in milliseconds since the UNIX epoch (0 for a clock set before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_with_milliseconds() {
        assert_eq!(rfc3339_ms(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_ms(1_764_700_000_123), "2025-12-02T18:26:40.123Z");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_605), (2026, 6, 1));
        assert_eq!(civil_from_days(-719_162), (1, 1, 1));
        assert_eq!(civil_from_days(2_932_896), (9999, 12, 31));
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-719_162, -1, 0, 59, 365, 19_723, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn now_forms() {
        assert_eq!(today().len(), 10);
        let now = now_rfc3339();
        assert_eq!(now.len(), 20);
        assert!(now.as_bytes()[10] == b'T' && now.ends_with('Z'), "{now}");
    }
}
