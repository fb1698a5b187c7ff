//! Lenient reading of Aliyun JSON (ref §1.4): ids and sizes that may come as strings or
//! numbers, booleans as `true`/`1`, absent fields, and RFC 3339 times with milliseconds.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer};
use serde_json::Value;

/// A JSON value as text: strings as they are, numbers and booleans printed, anything
/// else empty. Ids (`drive_id` is a decimal string, ref §1.4) go through this.
pub fn string_of(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// A JSON value as an unsigned integer: numbers, numeric strings; anything else 0.
pub fn u64_of(v: &Value) -> u64 {
    match v {
        Value::Number(n) => n.as_u64().or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64)).unwrap_or(0),
        Value::String(s) => s.trim().parse().unwrap_or(0),
        _ => 0,
    }
}

/// A JSON value as a boolean: `true`, non-zero numbers, `"true"`/`"1"`.
pub fn bool_of(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => matches!(s.trim(), "true" | "1"),
        _ => false,
    }
}

/// `#[serde(deserialize_with = "json::string")]`: a string, number or null as text.
pub fn string<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(string_of(&Value::deserialize(d)?))
}

/// `#[serde(deserialize_with = "json::uint")]`: a number or numeric string, else 0.
pub fn uint<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(u64_of(&Value::deserialize(d)?))
}

/// `#[serde(deserialize_with = "json::boolean")]`.
pub fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(bool_of(&Value::deserialize(d)?))
}

/// An RFC 3339 time (`2023-02-17T07:45:43.511Z`, also with an offset or without
/// fractions) as a `SystemTime`; `None` for empty or malformed text.
pub fn time(s: &str) -> Option<SystemTime> {
    let t = chrono::DateTime::parse_from_rfc3339(s.trim()).ok()?;
    let ms = t.timestamp_millis();
    if ms >= 0 {
        Some(UNIX_EPOCH + Duration::from_millis(ms as u64))
    } else {
        UNIX_EPOCH.checked_sub(Duration::from_millis(ms.unsigned_abs()))
    }
}

/// `t` as the services write it: UTC with milliseconds (`2006-01-02T15:04:05.000Z`).
pub fn rfc3339(t: SystemTime) -> String {
    let dt: chrono::DateTime<chrono::Utc> = t.into();
    dt.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_read_leniently() {
        assert_eq!(string_of(&serde_json::json!("74470")), "74470");
        assert_eq!(string_of(&serde_json::json!(74470)), "74470");
        assert_eq!(string_of(&Value::Null), "");
        assert_eq!(u64_of(&serde_json::json!(12345678)), 12345678);
        assert_eq!(u64_of(&serde_json::json!("42")), 42);
        assert_eq!(u64_of(&serde_json::json!(-1)), 0);
        assert!(bool_of(&serde_json::json!(true)) && bool_of(&serde_json::json!(1)) && !bool_of(&Value::Null));
    }

    #[test]
    fn rfc3339_with_millis() {
        let t = time("2023-02-17T07:45:43.511Z").unwrap();
        assert_eq!(t.duration_since(UNIX_EPOCH).unwrap(), Duration::from_millis(1_676_619_943_511));
        assert_eq!(rfc3339(t), "2023-02-17T07:45:43.511Z");
        assert_eq!(time("2023-02-17T15:45:43+08:00"), time("2023-02-17T07:45:43Z"));
        assert_eq!(time(""), None);
        assert_eq!(time("yesterday"), None);
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
    }
}
