//! Small helpers: clocks, ids, header parsing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Now as RFC 3339 (UTC).
pub(crate) fn now_rfc3339() -> String {
    jiff::Timestamp::now().to_string()
}

/// Unix milliseconds as RFC 3339 (UTC), for status output.
pub fn rfc3339_ms(ms: i64) -> String {
    jiff::Timestamp::from_millisecond(ms)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| ms.to_string())
}

/// A fresh id with a prefix, made of characters every server id check
/// accepts (letters, digits, `-`): `evt-0190c0…`.
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::now_v7().simple())
}

/// Ids the phone chooses: [`assist_protocol::is_valid_client_id`], the
/// rule the server checks.
pub(crate) fn check_client_id(what: &str, id: &str) -> crate::Result<()> {
    if assist_protocol::is_valid_client_id(id) {
        Ok(())
    } else {
        Err(crate::Error::Invalid(format!(
            "{what} `{}` must be {}",
            id.chars().take(64).collect::<String>(),
            assist_protocol::CLIENT_ID_RULE
        )))
    }
}

/// `Retry-After`: delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(parse_retry_after(" 7 "), Some(Duration::from_secs(7)));
        let later = SystemTime::now() + Duration::from_secs(120);
        let d = parse_retry_after(&httpdate::fmt_http_date(later)).unwrap();
        assert!(
            d > Duration::from_secs(100) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        let past = httpdate::fmt_http_date(SystemTime::now() - Duration::from_secs(60));
        assert_eq!(parse_retry_after(&past), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn client_ids_are_checked() {
        assert!(check_client_id("id", "evt-01ab:x_y.z").is_ok());
        assert!(check_client_id("id", "").is_err());
        assert!(check_client_id("id", "a b").is_err());
        assert!(check_client_id("id", &"a".repeat(201)).is_err());
        assert!(check_client_id("id", &new_id("evt")).is_ok());
    }
}
