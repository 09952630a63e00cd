//! Wall-clock timestamps for logs (UTC), without a date-time dependency.

use std::time::{SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

struct Civil {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    minute: u64,
    second: u64,
    millis: u32,
}

/// Converts a time to a UTC calendar date (Howard Hinnant's days-to-civil algorithm).
fn civil(t: SystemTime) -> Civil {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let month = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: rem / 3600,
        minute: rem % 3600 / 60,
        second: rem % 60,
        millis: since.subsec_millis(),
    }
}

/// Unix seconds as an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub(crate) fn unix_http_date(unix: i64) -> String {
    let t =
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(u64::try_from(unix).unwrap_or(0));
    httpdate::fmt_http_date(t)
}

/// `2026-11-22T21:11:04.123Z`
pub(crate) fn rfc3339_millis(t: SystemTime) -> String {
    let c = civil(t);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.millis
    )
}

/// `22/Nov/2026:21:11:04 +0000` (the common log format's time).
pub(crate) fn common_log(t: SystemTime) -> String {
    let c = civil(t);
    let month = MONTHS[(c.month as usize).saturating_sub(1) % 12];
    format!(
        "{:02}/{month}/{:04}:{:02}:{:02}:{:02} +0000",
        c.day, c.year, c.hour, c.minute, c.second
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn known_instants_format_correctly() {
        let t = UNIX_EPOCH + Duration::from_millis(1_795_381_864_123);
        assert_eq!(rfc3339_millis(t), "2026-11-22T21:11:04.123Z");
        assert_eq!(common_log(t), "22/Nov/2026:21:11:04 +0000");
        assert_eq!(rfc3339_millis(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339_millis(leap), "2000-02-29T00:00:00.000Z");
    }
}
