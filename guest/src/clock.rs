//! UTC time stamps: the format's `timestamp` field, the finer stamp in fmes
//! file names, and a send clock that never repeats or goes back within one
//! process (or one component instance), which keeps each sender's messages in order.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A UTC instant in nanoseconds since the Unix epoch (before 2262).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UtcNanos(pub u64);

const NANOS_PER_SEC: u64 = 1_000_000_000;

impl UtcNanos {
    pub fn from_system_time(time: SystemTime) -> Self {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO);
        UtcNanos(since.as_nanos().min(u64::MAX as u128) as u64)
    }

    pub fn from_secs(secs: u64) -> Self {
        // A comparison, not `saturating_mul`: in wasm32 that is a call to a
        // 128-bit multiply, and names are parsed once per listed message.
        if secs > u64::MAX / NANOS_PER_SEC {
            UtcNanos(u64::MAX)
        } else {
            UtcNanos(secs * NANOS_PER_SEC)
        }
    }

    fn split(self) -> (Civil, u32) {
        let secs = self.0 / NANOS_PER_SEC;
        (
            Civil::from_unix(secs),
            (self.0 - secs * NANOS_PER_SEC) as u32,
        )
    }

    /// The format's `timestamp` field: `YYYY-MM-DDTHH:MM:SSZ`.
    pub fn timestamp(self) -> String {
        String::from_utf8(self.timestamp_bytes().to_vec()).expect("ASCII digits")
    }

    /// [`Self::timestamp`] in a fixed layout, for writers that copy it
    /// straight into a larger text (no allocation of its own).
    pub fn timestamp_bytes(self) -> [u8; 20] {
        let (c, _) = self.split();
        let mut text = *b"0000-00-00T00:00:00Z";
        put_digits(&mut text[0..4], c.year);
        put_digits(&mut text[5..7], c.month);
        put_digits(&mut text[8..10], c.day);
        put_digits(&mut text[11..13], c.hour);
        put_digits(&mut text[14..16], c.minute);
        put_digits(&mut text[17..19], c.second);
        text
    }

    /// The stamp in fmes file names: `YYYYmmdd_HHMMSS.nnnnnnnnnZ`. It starts
    /// like the Python writer's `YYYYmmdd_HHMMSS` and sorts byte-wise in time
    /// order. Writers copy [`Self::name_stamp_bytes`] into the name instead.
    #[cfg(test)]
    pub fn name_stamp(self) -> String {
        String::from_utf8(self.name_stamp_bytes().to_vec()).expect("ASCII digits")
    }

    /// [`Self::name_stamp`] in a fixed layout (no allocation of its own).
    pub fn name_stamp_bytes(self) -> [u8; 26] {
        let (c, nanos) = self.split();
        let mut text = *b"00000000_000000.000000000Z";
        put_digits(&mut text[0..4], c.year);
        put_digits(&mut text[4..6], c.month);
        put_digits(&mut text[6..8], c.day);
        put_digits(&mut text[9..11], c.hour);
        put_digits(&mut text[11..13], c.minute);
        put_digits(&mut text[13..15], c.second);
        put_digits(&mut text[16..25], nanos);
        text
    }

    /// Parses a `timestamp` field.
    pub fn parse_timestamp(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() != 20
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
            || b[19] != b'Z'
        {
            return None;
        }
        let civil = Civil {
            year: digits(&b[0..4])?,
            month: digits(&b[5..7])?,
            day: digits(&b[8..10])?,
            hour: digits(&b[11..13])?,
            minute: digits(&b[14..16])?,
            second: digits(&b[17..19])?,
        };
        civil.to_unix().map(Self::from_secs)
    }

    /// Parses a [`name_stamp`](Self::name_stamp) at the start of `text`.
    pub fn parse_name_stamp(text: &str) -> Option<Self> {
        let b = text.as_bytes();
        if b.len() < 26 || b[8] != b'_' || b[15] != b'.' || b[25] != b'Z' {
            return None;
        }
        let civil = Civil {
            year: digits(&b[0..4])?,
            month: digits(&b[4..6])?,
            day: digits(&b[6..8])?,
            hour: digits(&b[9..11])?,
            minute: digits(&b[11..13])?,
            second: digits(&b[13..15])?,
        };
        let nanos = u64::from(digits(&b[16..25])?);
        let secs = civil.to_unix()?;
        // Four-digit years: at most 9999-12-31, whose nanoseconds would not
        // fit 64 bits; compared rather than `checked_mul` (see `from_secs`).
        if secs > (u64::MAX - nanos) / NANOS_PER_SEC {
            return None;
        }
        Some(UtcNanos(secs * NANOS_PER_SEC + nanos))
    }
}

/// The value of a run of ASCII digits, at most nine (which fit 32 bits).
///
/// In 32 bits and inlined: every listed message name is parsed (seven runs
/// each), and in wasm32 a 64-bit accumulator and a call per run showed.
#[inline(always)]
fn digits(bytes: &[u8]) -> Option<u32> {
    debug_assert!(bytes.len() <= 9);
    let mut value: u32 = 0;
    for &b in bytes {
        let digit = b.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + u32::from(digit);
    }
    Some(value)
}

/// A calendar date and time of day, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Civil {
    year: u32,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Civil {
    /// Converts seconds since 1970 to a proleptic Gregorian date (the
    /// days-to-civil computation on 400-year eras of 146,097 days).
    fn from_unix(secs: u64) -> Civil {
        // Days and seconds of the day fit 32 bits (until the year 11 million),
        // and the rest runs on them: see `push_digits`.
        let days = (secs / 86_400) as u32;
        let rem = (secs - u64::from(days) * 86_400) as u32;
        let z = days + 719_468; // days since 0000-03-01
        let era = z / 146_097;
        let doe = z % 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = doy - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = yoe + era * 400 + u32::from(month <= 2);
        Civil {
            year,
            month,
            day,
            hour: rem / 3_600,
            minute: rem % 3_600 / 60,
            second: rem % 60,
        }
    }

    /// The inverse of [`from_unix`](Self::from_unix); `None` for an invalid
    /// date, or one outside the years 1970 to 9999 (four digits).
    fn to_unix(self) -> Option<u64> {
        let Civil {
            year,
            month,
            day,
            hour,
            minute,
            second,
        } = self;
        let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
        // 31 and 30 alternate, restarting in August; February apart. (A
        // table of months here was built in wasm memory on every call.)
        let month_days = match month {
            2 => 28 + u32::from(leap),
            _ => 30 + ((month + month / 8) % 2),
        };
        if !(1..=12).contains(&month)
            || day == 0
            || day > month_days
            || hour > 23
            || minute > 59
            || second > 59
            || !(1970..=9999).contains(&year)
        {
            return None;
        }
        // In 32 bits, as in `from_unix`: a year of four digits at most.
        let y = year - u32::from(month <= 2);
        let era = y / 400;
        let yoe = y % 400;
        let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = (era * 146_097 + doe).checked_sub(719_468)?;
        Some(u64::from(days) * 86_400 + u64::from(hour * 3_600 + minute * 60 + second))
    }
}

static LAST_SEND: Mutex<u64> = Mutex::new(0);

/// The time for a new message: the wall clock, but always later than the
/// previous one this process handed out, so two sends never share a stamp
/// and a sender's order survives a clock that is coarse or steps back.
pub fn next_send_time(now: SystemTime) -> UtcNanos {
    let now = UtcNanos::from_system_time(now).0;
    let mut last = LAST_SEND
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let next = now.max(*last + 1);
    *last = next;
    UtcNanos(next)
}

/// The last `out.len()` decimal digits of `value` into `out`, zero-padded
/// (a year before 2262 has four, and every other part of a stamp its width).
fn put_digits(out: &mut [u8], mut value: u32) {
    for digit in out.iter_mut().rev() {
        *digit = b'0' + (value % 10) as u8;
        value /= 10;
    }
}

/// Appends `value` in decimal, zero-padded to `width` digits (all of its
/// digits if it has more), as `format!("{value:0width$}")` does, without
/// the formatting machinery (a send formats two stamps). 32 bits: in wasm a
/// 64-bit division by a constant stays a division, several times slower.
pub(crate) fn push_digits(text: &mut String, value: u32, width: usize) {
    const ZEROS: &str = "0000000000";
    let mut digits = [b'0'; 10];
    let mut rest = value;
    let mut used = 0;
    while rest > 0 || used == 0 {
        digits[9 - used] = b'0' + (rest % 10) as u8;
        rest /= 10;
        used += 1;
    }
    // Whole slices, not a char at a time: each push checks and encodes.
    let mut padding = width.saturating_sub(used);
    while padding > 0 {
        let run = padding.min(ZEROS.len());
        text.push_str(&ZEROS[..run]);
        padding -= run;
    }
    text.push_str(std::str::from_utf8(&digits[10 - used..]).expect("ASCII digits"));
}

/// Appends `value` in decimal, as `value.to_string()` spells it, with one
/// 64-bit division (several times slower than a 32-bit one in wasm).
pub(crate) fn push_decimal(text: &mut String, value: u64) {
    const BILLION: u64 = 1_000_000_000;
    if value < BILLION {
        return push_digits(text, value as u32, 1);
    }
    let (high, low) = (value / BILLION, (value % BILLION) as u32);
    if high < BILLION {
        push_digits(text, high as u32, 1);
    } else {
        push_digits(text, (high / BILLION) as u32, 1);
        push_digits(text, (high % BILLION) as u32, 9);
    }
    push_digits(text, low, 9);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_spelled_as_to_string_spells_them() {
        let mut values = vec![
            0,
            7,
            10,
            999_999_999,
            1_000_000_000,
            1_000_000_001,
            u64::MAX,
        ];
        values.extend((0..64).map(|shift| 1u64 << shift));
        values.extend((0..64).map(|shift| (1u64 << shift) - 1));
        values.push(1_000_000_000_000_000_000);
        values.push(999_999_999_999_999_999);
        for value in values {
            let mut text = String::from("x");
            push_decimal(&mut text, value);
            assert_eq!(text, format!("x{value}"));
        }
    }

    #[test]
    fn digits_are_padded_as_format_pads_them() {
        for (value, width) in [
            (0, 1),
            (0, 4),
            (7, 2),
            (42, 2),
            (123, 2),
            (2026, 4),
            (5, 9),
            (999_999_999, 9),
            (u32::MAX, 4),
            (u32::MAX, 12),
        ] {
            let mut text = String::new();
            push_digits(&mut text, value, width);
            assert_eq!(text, format!("{value:0width$}"));
        }
    }

    #[test]
    fn formats_known_instants() {
        let t = UtcNanos(1_700_000_000 * NANOS_PER_SEC + 42);
        assert_eq!(t.timestamp(), "2023-11-14T22:13:20Z");
        assert_eq!(t.name_stamp(), "20231114_221320.000000042Z");
        assert_eq!(UtcNanos(0).timestamp(), "1970-01-01T00:00:00Z");
        // A leap day.
        assert_eq!(
            UtcNanos::from_secs(951_782_400).timestamp(),
            "2000-02-29T00:00:00Z"
        );
    }

    #[test]
    fn parses_what_it_formats() {
        // Every day over several centuries, at a few times of day.
        let mut secs = 0u64;
        while secs < 13_000_000_000 {
            let t = UtcNanos(secs * NANOS_PER_SEC + 123_456_789);
            assert_eq!(UtcNanos::parse_name_stamp(&t.name_stamp()), Some(t));
            assert_eq!(
                UtcNanos::parse_timestamp(&t.timestamp()),
                Some(UtcNanos::from_secs(secs))
            );
            secs += 86_400 * 7 + 3_599;
        }
    }

    #[test]
    fn the_last_nanosecond_that_fits_parses_and_the_next_does_not() {
        let last = UtcNanos(u64::MAX);
        assert_eq!(last.name_stamp(), "25540721_233433.709551615Z");
        assert_eq!(UtcNanos::parse_name_stamp(&last.name_stamp()), Some(last));
        assert_eq!(
            UtcNanos::parse_name_stamp("25540721_233433.709551616Z"),
            None
        );
        assert_eq!(
            UtcNanos::parse_name_stamp("99991231_235959.999999999Z"),
            None
        );
        // A `timestamp` field has seconds only: the far future saturates.
        assert_eq!(
            UtcNanos::parse_timestamp("9999-12-31T23:59:59Z"),
            Some(UtcNanos(u64::MAX))
        );
    }

    #[test]
    fn each_month_ends_on_its_last_day() {
        let common = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
        for (year, february) in [(2023, 28), (2024, 29), (2100, 28), (2000, 29)] {
            for (month, &last) in (1..).zip(&common) {
                let last = if month == 2 { february } else { last };
                let day = |d: u32| format!("{year}-{month:02}-{d:02}T00:00:00Z");
                assert!(
                    UtcNanos::parse_timestamp(&day(last)).is_some(),
                    "{}",
                    day(last)
                );
                assert_eq!(
                    UtcNanos::parse_timestamp(&day(last + 1)),
                    None,
                    "{}",
                    day(last + 1)
                );
            }
        }
    }

    #[test]
    fn rejects_bad_stamps() {
        for bad in [
            "2024-02-30T00:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-01-01T24:00:00Z",
            "2024-01-01 00:00:00Z",
            "2024-01-01T00:00:00",
            "1969-12-31T23:59:59Z",
            "２０２４-01-01T00:00:00Z",
        ] {
            assert_eq!(UtcNanos::parse_timestamp(bad), None, "{bad}");
        }
        assert_eq!(UtcNanos::parse_name_stamp("20240101_120000_claude"), None);
    }

    #[test]
    fn send_times_strictly_increase() {
        let now = SystemTime::now();
        let a = next_send_time(now);
        let b = next_send_time(now);
        let c = next_send_time(now - Duration::from_secs(3600));
        assert!(a < b && b < c);
    }
}
