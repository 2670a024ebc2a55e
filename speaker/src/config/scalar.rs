//! Leaf values: turn one YAML scalar into a typed value or record an error that names the
//! field and says what was expected (`invalid value "abc": expected an AS number`).
//! Scalars are read as Go's yaml.v2 (MetalLB's parser) reads them where that is friendlier:
//! `yes`/`no`/`on`/`off` are booleans, and a number where a name is expected is its text.

use std::net::IpAddr;
use std::time::Duration;

use serde_yaml::Value;

use super::duration::parse_go_duration;
use super::error::{Diags, FieldPath};

/// How a value reads in an error message.
pub fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

fn invalid(d: &mut Diags, path: &FieldPath, v: &Value, expected: &str) {
    d.error(
        path,
        format!("invalid value {}: expected {expected}", describe(v)),
    );
}

/// An unsigned integer in `min..=max`; `what` names it for the message.
pub fn uint(
    d: &mut Diags,
    path: &FieldPath,
    v: &Value,
    min: u64,
    max: u64,
    what: &str,
) -> Option<u64> {
    match v.as_u64() {
        Some(n) if (min..=max).contains(&n) => Some(n),
        Some(n) => {
            d.error(
                path,
                format!("invalid value {n}: expected {what} in {min}..={max}"),
            );
            None
        }
        None => {
            invalid(d, path, v, &format!("{what} in {min}..={max}"));
            None
        }
    }
}

/// An AS number (4-octet range). 0 (RFC 7607) and 23456 (AS_TRANS, RFC 6793) are refused.
pub fn asn(d: &mut Diags, path: &FieldPath, v: &Value) -> Option<u32> {
    let Some(n) = v.as_u64() else {
        invalid(d, path, v, "an AS number (1..=4294967295)");
        return None;
    };
    match u32::try_from(n) {
        Err(_) => {
            d.error(
                path,
                format!("invalid value {n}: expected an AS number (1..=4294967295)"),
            );
            None
        }
        Ok(0) => {
            d.error(
                path,
                "AS number 0 is reserved (RFC 7607) and cannot be used",
            );
            None
        }
        Ok(23456) => {
            d.error(
                path,
                "AS number 23456 is AS_TRANS (RFC 6793), not a usable AS number",
            );
            None
        }
        Ok(a) => Some(a),
    }
}

pub fn boolean(d: &mut Diags, path: &FieldPath, v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => match s.as_str() {
            "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => Some(true),
            "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False" | "FALSE" => Some(false),
            _ => {
                invalid(d, path, v, "true or false");
                None
            }
        },
        _ => {
            invalid(d, path, v, "true or false");
            None
        }
    }
}

/// A string; numbers and booleans are taken as their text (yaml.v2 does the same).
pub fn string(d: &mut Diags, path: &FieldPath, v: &Value, what: &str) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => {
            invalid(d, path, v, what);
            None
        }
    }
}

pub fn ip(d: &mut Diags, path: &FieldPath, v: &Value) -> Option<IpAddr> {
    match v {
        Value::String(s) => match s.trim().parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                invalid(d, path, v, "an IP address");
                None
            }
        },
        _ => {
            invalid(d, path, v, "an IP address");
            None
        }
    }
}

/// A Go duration string (`90s`, `1m30s`). A bare `0` is allowed, as in Go.
pub fn duration(d: &mut Diags, path: &FieldPath, v: &Value) -> Option<Duration> {
    match v {
        Value::String(s) => match parse_go_duration(s) {
            Ok(dur) => Some(dur),
            Err(why) => {
                d.error(path, why);
                None
            }
        },
        Value::Number(n) if n.as_u64() == Some(0) => Some(Duration::ZERO),
        Value::Number(n) => {
            d.error(
                path,
                format!("invalid duration {n}: missing unit (write e.g. \"{n}s\")"),
            );
            None
        }
        _ => {
            invalid(d, path, v, "a duration like \"90s\"");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T>(
        f: impl FnOnce(&mut Diags, &FieldPath, &Value) -> Option<T>,
        yaml: &str,
    ) -> Result<T, String> {
        let v: Value = serde_yaml::from_str(yaml).unwrap();
        let mut d = Diags::default();
        let p = FieldPath::root().key("x");
        match f(&mut d, &p, &v) {
            Some(t) if d.errors.is_empty() => Ok(t),
            _ => Err(d
                .errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ")),
        }
    }

    #[test]
    fn asn_range_and_reserved_values() {
        assert_eq!(run(asn, "64512"), Ok(64512));
        assert_eq!(run(asn, "4294967295"), Ok(u32::MAX));
        assert_eq!(run(asn, "4200000001"), Ok(4_200_000_001));
        assert_eq!(
            run(asn, "abc"),
            Err("x: invalid value \"abc\": expected an AS number (1..=4294967295)".into())
        );
        assert!(run(asn, "4294967296")
            .unwrap_err()
            .contains("expected an AS number"));
        assert!(run(asn, "-1").unwrap_err().contains("invalid value -1"));
        assert!(run(asn, "0").unwrap_err().contains("RFC 7607"));
        assert!(run(asn, "23456").unwrap_err().contains("AS_TRANS"));
        assert!(run(asn, "1.5").unwrap_err().contains("invalid value 1.5"));
    }

    #[test]
    fn booleans_accept_yaml_1_1_words() {
        for (y, want) in [
            ("true", true),
            ("false", false),
            ("yes", true),
            ("off", false),
            ("On", true),
        ] {
            assert_eq!(run(boolean, y), Ok(want), "{y}");
        }
        assert_eq!(
            run(boolean, "maybe"),
            Err("x: invalid value \"maybe\": expected true or false".into())
        );
        assert!(run(boolean, "1").is_err());
    }

    #[test]
    fn durations_need_units() {
        assert_eq!(run(duration, "90s"), Ok(Duration::from_secs(90)));
        assert_eq!(run(duration, "0"), Ok(Duration::ZERO));
        assert_eq!(
            run(duration, "90"),
            Err("x: invalid duration 90: missing unit (write e.g. \"90s\")".into())
        );
        assert!(run(duration, "[1]").unwrap_err().contains("a list"));
    }

    #[test]
    fn ips_and_strings() {
        assert_eq!(run(ip, "10.0.0.1"), Ok("10.0.0.1".parse().unwrap()));
        assert_eq!(run(ip, "fd00::1"), Ok("fd00::1".parse().unwrap()));
        assert_eq!(
            run(ip, "10.0.0.300"),
            Err("x: invalid value \"10.0.0.300\": expected an IP address".into())
        );
        assert_eq!(
            run(|d, p, v| string(d, p, v, "a name"), "42"),
            Ok("42".to_string())
        );
        assert!(run(|d, p, v| string(d, p, v, "a name"), "{a: 1}")
            .unwrap_err()
            .contains("a mapping"));
        assert_eq!(
            run(|d, p, v| uint(d, p, v, 1, 65535, "a port"), "70000"),
            Err("x: invalid value 70000: expected a port in 1..=65535".into())
        );
    }
}
