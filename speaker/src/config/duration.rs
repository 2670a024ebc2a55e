//! Go `time.ParseDuration` syntax, which MetalLB's `hold-time` and `keepalive-time` use:
//! a sequence of decimal numbers with a unit each (`90s`, `1m30s`, `1.5h`, `300ms`), or `0`.
//! Negative durations are rejected (Go accepts them; no BGP timer can be negative).

use std::time::Duration;

/// Parse a Go-style duration. The error says what was wrong, without the field name.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let orig = s;
    let mut rest = s;
    if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    } else if rest.starts_with('-') {
        return Err(format!("invalid duration {orig:?}: must not be negative"));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(format!("invalid duration {orig:?}"));
    }
    let mut total_nanos: u128 = 0;
    while !rest.is_empty() {
        // The number: digits, optionally a '.' and more digits.
        let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, after) = rest.split_at(int_len);
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.bytes().take_while(u8::is_ascii_digit).count();
                a.split_at(n)
            }
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return Err(format!("invalid duration {orig:?}"));
        }
        // The unit: everything up to the next digit or '.'.
        let unit_len = after
            .char_indices()
            .find(|(_, c)| c.is_ascii_digit() || *c == '.')
            .map_or(after.len(), |(i, _)| i);
        let (unit, after) = after.split_at(unit_len);
        let unit_nanos: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60 * 1_000_000_000,
            "h" => 3_600 * 1_000_000_000,
            "" => {
                return Err(format!(
                    "invalid duration {orig:?}: missing unit (write e.g. \"{orig}s\")"
                ))
            }
            other => {
                return Err(format!(
                    "invalid duration {orig:?}: unknown unit {other:?} (use h, m, s, ms, us or ns)"
                ))
            }
        };
        let int: u128 = if int_part.is_empty() {
            0
        } else {
            int_part
                .parse()
                .map_err(|_| format!("invalid duration {orig:?}: number too large"))?
        };
        let mut nanos = int
            .checked_mul(unit_nanos)
            .ok_or_else(|| format!("invalid duration {orig:?}: too large"))?;
        // Fractional digits beyond nanosecond precision are dropped, as Go does.
        let mut scale = unit_nanos;
        for d in frac_part.bytes().take(30) {
            scale /= 10;
            if scale == 0 {
                break;
            }
            nanos += u128::from(d - b'0') * scale;
        }
        total_nanos = total_nanos
            .checked_add(nanos)
            .ok_or_else(|| format!("invalid duration {orig:?}: too large"))?;
        if total_nanos > u128::from(u64::MAX) * 1_000_000_000 {
            return Err(format!("invalid duration {orig:?}: too large"));
        }
        rest = after;
    }
    let secs = (total_nanos / 1_000_000_000) as u64;
    let sub = (total_nanos % 1_000_000_000) as u32;
    Ok(Duration::new(secs, sub))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_accepts_what_go_accepts() {
        let ok = [
            ("0", Duration::ZERO),
            ("90s", Duration::from_secs(90)),
            ("1m30s", Duration::from_secs(90)),
            ("1.5m", Duration::from_secs(90)),
            ("2h", Duration::from_secs(7200)),
            ("300ms", Duration::from_millis(300)),
            ("1s500ms", Duration::from_millis(1500)),
            ("+3s", Duration::from_secs(3)),
            (".5s", Duration::from_millis(500)),
            ("1.s", Duration::from_secs(1)),
            ("10us", Duration::from_micros(10)),
            ("10\u{b5}s", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            ("0s", Duration::ZERO),
        ];
        for (s, want) in ok {
            assert_eq!(parse_go_duration(s), Ok(want), "{s}");
        }
    }

    #[test]
    fn go_duration_rejects_with_a_reason() {
        let bad = [
            ("", "invalid duration \"\""),
            ("90", "missing unit"),
            ("1d", "unknown unit \"d\""),
            ("-3s", "must not be negative"),
            ("s", "invalid duration \"s\""),
            ("1m30", "missing unit"),
            (".s", "invalid duration"),
            ("99999999999999999999999h", "too large"),
        ];
        for (s, want) in bad {
            let err = parse_go_duration(s).expect_err(s);
            assert!(err.contains(want), "{s}: {err}");
        }
    }
}
