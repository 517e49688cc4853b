//! Dates and times at Lockdesk's edges, in one place: the clock in Unix milliseconds (what every
//! store and the feed carry), RFC 3339 text (iAdvize's `DateTime`, the desk's JSON lines, audit
//! exports, file names) and dates typed on the command line.
//!
//! - [`now_ms`], [`ms_since_epoch`]: the clock as Unix milliseconds (a clock before 1970 reads
//!   0; one past `i64` saturates).
//! - [`format_ms`]: `2026-01-01T10:00:00.123Z` (UTC, always three fraction digits: the texts of
//!   two times sort as the times do); [`format_secs`]: `2026-01-01T10:00:00Z` (iAdvize's `DateTime`,
//!   the fraction dropped).
//! - [`parse_ms`]: an RFC 3339 date-time from outside (any offset, any fraction; the fraction
//!   below a millisecond is dropped) to UTC milliseconds; [`parse_date`]: that, or `YYYY-MM-DD`
//!   as a whole UTC day (the CLI's `--from`/`--to`).
//!
//! Invariants: nothing here panics, whatever the input or the clock. Parsed times are within
//! [`MIN_MS`]`..=`[`MAX_MS`] (years 1970 to 9999: RFC 3339 has four-digit years; the feed's bounds,
//! `lockdesk_feed::MIN_TIME_MS`/`MAX_TIME_MS`, are the same) or an error; formatting is total (a
//! time outside them prints as the nearest bound).

use std::fmt;
use std::time::{SystemTime, UNIX_EPOCH};

use ::time::format_description::well_known::Rfc3339;
use ::time::{Date, Month, OffsetDateTime};

/// The earliest time Lockdesk reads or writes: 1970-01-01T00:00:00.000Z.
pub const MIN_MS: i64 = 0;
/// The latest: 9999-12-31T23:59:59.999Z.
pub const MAX_MS: i64 = 253_402_300_799_999;

/// Why a date from outside was not read. The messages do not quote the input (callers that may
/// show it do so through [`crate::visible`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeError {
    /// Not an RFC 3339 date-time (with its offset: `Z` or `±hh:mm`).
    NotRfc3339,
    /// Neither `YYYY-MM-DD` nor an RFC 3339 date-time.
    NotADate,
    /// A real instant, but before 1970 or after 9999.
    OutOfRange,
}

impl fmt::Display for TimeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeError::NotRfc3339 => {
                "not an RFC 3339 date-time with an offset (2026-01-10T09:00:00Z)"
            }
            TimeError::NotADate => "expected YYYY-MM-DD or an RFC 3339 timestamp",
            TimeError::OutOfRange => "outside the years 1970 to 9999",
        })
    }
}

impl std::error::Error for TimeError {}

/// Unix milliseconds now.
pub fn now_ms() -> i64 {
    ms_since_epoch(SystemTime::now())
}

/// `t` in Unix milliseconds: 0 before 1970, `i64::MAX` past what it holds.
pub fn ms_since_epoch(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The UTC calendar time of `ms`, clamped to [`MIN_MS`]`..=`[`MAX_MS`].
fn utc(ms: i64) -> OffsetDateTime {
    let ms = ms.clamp(MIN_MS, MAX_MS);
    // Within the bounds the conversion cannot fail; the epoch is the total answer regardless.
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

fn write_utc(t: OffsetDateTime, millis: bool) -> String {
    let mut s = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    if millis {
        s.push_str(&format!(".{:03}", t.millisecond()));
    }
    s.push('Z');
    s
}

/// `1767261600123` → `2026-01-01T10:00:00.123Z`. Total: outside the bounds, the nearest bound.
pub fn format_ms(ms: i64) -> String {
    write_utc(utc(ms), true)
}

/// `1767261600123` → `2026-01-01T10:00:00Z` (iAdvize's `DateTime`; the fraction dropped). Total.
pub fn format_secs(ms: i64) -> String {
    write_utc(utc(ms), false)
}

/// An RFC 3339 date-time (`2026-01-10T09:00:00.250Z`, `2026-01-10T11:00:00+02:00`; surrounding
/// blanks ignored) as UTC milliseconds, within [`MIN_MS`]`..=`[`MAX_MS`].
pub fn parse_ms(text: &str) -> Result<i64, TimeError> {
    let t = OffsetDateTime::parse(text.trim(), &Rfc3339).map_err(|_| TimeError::NotRfc3339)?;
    in_bounds(t.unix_timestamp_nanos().div_euclid(1_000_000))
}

fn in_bounds(ms: i128) -> Result<i64, TimeError> {
    i64::try_from(ms)
        .ok()
        .filter(|ms| (MIN_MS..=MAX_MS).contains(ms))
        .ok_or(TimeError::OutOfRange)
}

/// A date typed by a person: `YYYY-MM-DD` (a UTC day: its first millisecond, or its last when
/// `end_of_day`) or an RFC 3339 date-time (exactly that instant, [`parse_ms`]).
pub fn parse_date(text: &str, end_of_day: bool) -> Result<i64, TimeError> {
    let text = text.trim();
    match parse_ms(text) {
        Err(TimeError::NotRfc3339) => {}
        other => return other,
    }
    let day = day(text).ok_or(TimeError::NotADate)?;
    let start = i128::from(day.midnight().assume_utc().unix_timestamp()) * 1000;
    in_bounds(if end_of_day {
        start + 86_400_000 - 1
    } else {
        start
    })
}

/// `YYYY-MM-DD`, digits only, a real calendar day.
fn day(text: &str) -> Option<Date> {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())
            .filter(|d| d.iter().all(u8::is_ascii_digit))
            .and_then(|_| text.get(r))
            .and_then(|d| d.parse::<u16>().ok())
    };
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let year = i32::from(digits(0..4)?);
    let month = Month::try_from(u8::try_from(digits(5..7)?).ok()?).ok()?;
    let day = u8::try_from(digits(8..10)?).ok()?;
    Date::from_calendar_date(year, month, day).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_utc_with_fixed_millis_and_clamps_outside_the_bounds() {
        assert_eq!(format_ms(1_767_261_600_123), "2026-01-01T10:00:00.123Z");
        assert_eq!(format_ms(86_400_000), "1970-01-02T00:00:00.000Z");
        assert_eq!(format_secs(1_767_261_600_999), "2026-01-01T10:00:00Z");
        assert_eq!(format_ms(MAX_MS), "9999-12-31T23:59:59.999Z");
        // Total: a time no store should hold prints as the nearest bound.
        assert_eq!(format_ms(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_ms(i64::MIN), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_secs(-1), "1970-01-01T00:00:00Z");
        // Fixed width: the texts sort as the times.
        let times = [0, 9, 10, 999, 1_000, 59_999, 1_767_261_600_123, MAX_MS];
        let texts: Vec<String> = times.iter().map(|&t| format_ms(t)).collect();
        let mut sorted = texts.clone();
        sorted.sort();
        assert_eq!(texts, sorted);
    }

    #[test]
    fn parses_any_offset_and_fraction_to_utc_millis_and_round_trips() {
        assert_eq!(parse_ms("2026-01-10T09:00:00.250Z"), Ok(1_768_035_600_250));
        assert_eq!(parse_ms("2026-01-10T09:30:00+00:00"), Ok(1_768_037_400_000));
        assert_eq!(parse_ms("2026-01-10T11:30:00+02:00"), Ok(1_768_037_400_000));
        assert_eq!(parse_ms(" 1970-01-01T00:00:01.5Z\n"), Ok(1_500));
        // Below a millisecond is dropped, not rounded up.
        assert_eq!(parse_ms("1970-01-01T00:00:00.999999999Z"), Ok(999));
        for ms in [0, 1, 999, 1_768_035_600_250, MAX_MS] {
            assert_eq!(parse_ms(&format_ms(ms)), Ok(ms), "{ms}");
        }
        assert_eq!(
            parse_ms(&format_secs(1_768_035_600_250)),
            Ok(1_768_035_600_000)
        );
    }

    /// A date from the wire out of range, or not a date at all, is an error, never a panic.
    #[test]
    fn hostile_or_out_of_range_dates_are_errors() {
        assert_eq!(
            parse_ms("1969-12-31T23:59:59.999Z"),
            Err(TimeError::OutOfRange)
        );
        assert_eq!(
            parse_ms("1970-01-01T00:30:00+01:00"),
            Err(TimeError::OutOfRange)
        );
        // 9999 in its own offset, the year 10000 in UTC.
        assert_eq!(
            parse_ms("9999-12-31T23:30:00-01:00"),
            Err(TimeError::OutOfRange)
        );
        assert_eq!(parse_ms("9999-12-31T23:59:59.999Z"), Ok(MAX_MS));
        for bad in [
            "",
            "yesterday",
            "2026-01-10",
            "2026-01-10T09:00:00",
            "2026-13-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-01-10T24:00:00Z",
            "2026-01-10T09:00:00+24:00",
            "+12026-01-10T09:00:00Z",
            "2026-01-10T09:00:00Z trailing",
            "２０２６-01-10T09:00:00Z",
            "2026-01-10T09:00:00.Z",
        ] {
            assert_eq!(parse_ms(bad), Err(TimeError::NotRfc3339), "{bad:?}");
        }
        let long = format!("2026-01-10T09:00:00.{}Z", "9".repeat(100_000));
        // A fraction of any length is read (digits past the nanosecond dropped), in linear time.
        assert_eq!(parse_ms(&long), Ok(1_768_035_600_999));
        assert_eq!(parse_ms("2026-01-10T09:00:00Z").unwrap(), 1_768_035_600_000);
        assert!(TimeError::NotRfc3339
            .to_string()
            .starts_with("not an RFC 3339"));
    }

    #[test]
    fn dates_parse_as_whole_utc_days_or_instants() {
        assert_eq!(parse_date("1970-01-02", false), Ok(86_400_000));
        assert_eq!(parse_date("1970-01-02", true), Ok(2 * 86_400_000 - 1));
        assert_eq!(parse_date("9999-12-31", true), Ok(MAX_MS));
        assert_eq!(parse_date("1970-01-01T00:00:01.5Z", false), Ok(1_500));
        assert_eq!(parse_date("1970-01-01T02:00:00+02:00", true), Ok(0));
        assert_eq!(parse_date("1969-12-31", false), Err(TimeError::OutOfRange));
        assert_eq!(
            parse_date("1969-12-31T00:00:00Z", false),
            Err(TimeError::OutOfRange)
        );
        for bad in [
            "2026-13-01",
            "2026-02-30",
            "yesterday",
            "2026-1-01",
            "+202-01-01",
            "２０２６-01-01",
            "",
        ] {
            assert_eq!(parse_date(bad, false), Err(TimeError::NotADate), "{bad:?}");
        }
    }

    #[test]
    fn the_clock_reads_millis_and_saturates() {
        assert_eq!(ms_since_epoch(UNIX_EPOCH), 0);
        assert_eq!(
            ms_since_epoch(UNIX_EPOCH + Duration::from_millis(1_500)),
            1_500
        );
        if let Some(before) = UNIX_EPOCH.checked_sub(Duration::from_secs(1)) {
            assert_eq!(ms_since_epoch(before), 0);
        }
        if let Some(far) = UNIX_EPOCH.checked_add(Duration::from_secs(u64::MAX / 2)) {
            assert_eq!(ms_since_epoch(far), i64::MAX);
        }
        assert!(now_ms() > 1_700_000_000_000);
    }
}
