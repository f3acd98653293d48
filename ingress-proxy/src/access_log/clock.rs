//! Wall-clock times as access logs write them, in UTC (what a container without a time zone
//! has, and what ingress-nginx's image logs).

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

const MONTHS: [&str; 12] =
    ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/// A moment, split the way log formats print it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    year: i64,
    month: u32,
    day: u32,
    hour: u64,
    minute: u64,
    second: u64,
    micros: u32,
    unix: u64,
}

impl Stamp {
    /// Now.
    pub(crate) fn now() -> Self {
        Self::at(SystemTime::now())
    }

    /// `at` (the epoch for a time before it).
    pub(crate) fn at(at: SystemTime) -> Self {
        let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let unix = since.as_secs();
        let (year, month, day) = civil((unix / 86_400) as i64);
        let secs = unix % 86_400;
        Self {
            year,
            month,
            day,
            hour: secs / 3600,
            minute: secs / 60 % 60,
            second: secs % 60,
            micros: since.subsec_micros(),
            unix,
        }
    }

    /// RFC 3339 with microseconds, as `tracing`'s JSON logs write it: `2026-12-02T20:28:17.123456Z`.
    pub(crate) fn rfc3339(&self, out: &mut Vec<u8>) {
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.micros
        );
    }

    /// nginx's `$time_local` (the Common Log Format): `02/Dec/2026:20:28:17 +0000`.
    pub(crate) fn local(&self, out: &mut Vec<u8>) {
        let month = MONTHS.get(self.month as usize - 1).copied().unwrap_or("Jan");
        let _ = write!(
            out,
            "{:02}/{month}/{:04}:{:02}:{:02}:{:02} +0000",
            self.day, self.year, self.hour, self.minute, self.second
        );
    }

    /// nginx's `$time_iso8601`: `2026-12-02T20:28:17+00:00`.
    pub(crate) fn iso8601(&self, out: &mut Vec<u8>) {
        let _ = write!(
            out,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}+00:00",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        );
    }

    /// nginx's `$msec`: seconds since the epoch, with milliseconds.
    pub(crate) fn msec(&self, out: &mut Vec<u8>) {
        let _ = write!(out, "{}.{:03}", self.unix, self.micros / 1000);
    }
}

/// Year, month and day of the `days`th day since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn all(at: SystemTime) -> [String; 4] {
        let s = Stamp::at(at);
        let text = |f: fn(&Stamp, &mut Vec<u8>)| {
            let mut out = Vec::new();
            f(&s, &mut out);
            String::from_utf8_lossy(&out).into_owned()
        };
        [text(Stamp::rfc3339), text(Stamp::local), text(Stamp::iso8601), text(Stamp::msec)]
    }

    #[test]
    fn times_print_as_nginx_and_tracing_print_them() {
        let at = UNIX_EPOCH + Duration::from_micros(1_796_243_297_123_456);
        let [rfc, local, iso, msec] = all(at);
        assert_eq!(rfc, "2026-12-02T20:28:17.123456Z");
        assert_eq!(local, "02/Dec/2026:20:28:17 +0000");
        assert_eq!(iso, "2026-12-02T20:28:17+00:00");
        assert_eq!(msec, "1796243297.123");
        // Leap days, year ends and the epoch.
        assert_eq!(all(UNIX_EPOCH + Duration::from_secs(951_782_400))[1], "29/Feb/2000:00:00:00 +0000");
        assert_eq!(all(UNIX_EPOCH + Duration::from_secs(1_735_689_599))[2], "2024-12-31T23:59:59+00:00");
        assert_eq!(all(UNIX_EPOCH)[0], "1970-01-01T00:00:00.000000Z");
        assert_eq!(all(UNIX_EPOCH - Duration::from_secs(5))[0], "1970-01-01T00:00:00.000000Z");
    }
}
