//! Tolerant field decoders: Feishu sends numbers as strings in one place and as numbers
//! in another (`order`, `create_time`), explicit `null`s, and values we do not expect.
//! A field we cannot make sense of becomes *unknown* (`None`), never a failed request.

use serde::{Deserialize, Deserializer, Serializer};
use serde_json::Value;

/// An integer sent as a JSON number or as a decimal string; anything else is unknown.
pub fn opt_i64_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(value_to_i64(&Value::deserialize(d)?))
}

pub fn value_to_i64(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| f as i64)
        }),
        Value::String(s) => s.trim().parse::<i64>().ok(),
        _ => None,
    }
}

/// A string sent as a JSON string or a number (ids and timestamps); other shapes are unknown.
pub fn opt_string_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// A boolean; `"true"`/`"false"` strings and 0/1 are accepted, other shapes are unknown.
pub fn opt_bool_lenient<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Bool(b) => Some(b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        Value::Number(n) => n.as_i64().map(|i| i != 0),
        _ => None,
    })
}

/// A list of strings; `null` entries and non-string entries are dropped, a non-list is unknown.
pub fn opt_string_vec_lenient<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Vec<String>>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => Some(
            items
                .into_iter()
                .filter_map(|v| match v {
                    Value::String(s) => Some(s),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect(),
        ),
        _ => None,
    })
}

/// A list of objects where one bad element must not lose the others: elements that do not
/// decode are dropped, a non-list is unknown.
pub fn opt_vec_lenient<'de, D, T>(d: D) -> Result<Option<Vec<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    Ok(match Value::deserialize(d)? {
        Value::Array(items) => Some(
            items
                .into_iter()
                .filter_map(|v| serde_json::from_value(v).ok())
                .collect(),
        ),
        _ => None,
    })
}

/// An object that does not decode is unknown rather than an error.
pub fn opt_struct_lenient<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    let v = Value::deserialize(d)?;
    if v.is_null() {
        return Ok(None);
    }
    Ok(serde_json::from_value(v).ok())
}

/// The Contact API sends department `order` as a string (`"100"`).
pub fn opt_i64_as_string<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(i) => s.serialize_str(&i.to_string()),
        None => s.serialize_none(),
    }
}

/// Normalises a Feishu timestamp to Unix milliseconds. Real `create_time` values have 13
/// digits (ms); the docs' sample has 16 (µs); 10 digits are seconds. Fractions (1.0 `ts`,
/// `"1502199207.7171419"`) are seconds.
pub fn timestamp_to_millis(raw: &str) -> Option<i64> {
    let raw = raw.trim();
    if raw.is_empty() {
        return None;
    }
    if let Some((secs, frac)) = raw.split_once('.') {
        let secs: i64 = secs.parse().ok()?;
        if !frac.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        let millis = frac
            .chars()
            .chain(std::iter::repeat('0'))
            .take(3)
            .collect::<String>()
            .parse::<i64>()
            .ok()?;
        return secs.checked_mul(1000)?.checked_add(millis);
    }
    if !raw.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let n: i64 = raw.parse().ok()?;
    match raw.len() {
        0..=11 => n.checked_mul(1000),
        12..=14 => Some(n),
        15..=17 => Some(n / 1_000),
        _ => Some(n / 1_000_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_of_every_observed_width_become_millis() {
        assert_eq!(
            timestamp_to_millis("1700000000123"),
            Some(1_700_000_000_123)
        );
        assert_eq!(
            timestamp_to_millis("1603977298000000"),
            Some(1_603_977_298_000)
        );
        assert_eq!(timestamp_to_millis("1700000000"), Some(1_700_000_000_000));
        assert_eq!(
            timestamp_to_millis("1502199207.7171419"),
            Some(1_502_199_207_717)
        );
        assert_eq!(timestamp_to_millis("1502199207.7"), Some(1_502_199_207_700));
        assert_eq!(timestamp_to_millis(""), None);
        assert_eq!(timestamp_to_millis("abc"), None);
        assert_eq!(timestamp_to_millis("-5"), None);
        assert_eq!(timestamp_to_millis("99999999999999999999999"), None);
    }

    #[test]
    fn lenient_integers() {
        assert_eq!(value_to_i64(&serde_json::json!("100")), Some(100));
        assert_eq!(value_to_i64(&serde_json::json!(100)), Some(100));
        assert_eq!(value_to_i64(&serde_json::json!(100.0)), Some(100));
        assert_eq!(value_to_i64(&serde_json::json!("x")), None);
        assert_eq!(value_to_i64(&serde_json::json!(null)), None);
    }
}
