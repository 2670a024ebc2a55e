//! BGP communities as the config spells them: standard `65535:65282` (RFC 1997, two 16-bit
//! halves, as MetalLB v0.12 accepts) and, as a bgplane extension, large `large:1:2:3`
//! (RFC 8092, three 32-bit parts; the same spelling MetalLB adopted in v0.13).

use std::fmt;

/// One community value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Community {
    /// RFC 1997: high 16 bits are the AS, low 16 bits the value.
    Standard(u32),
    /// RFC 8092: global administrator, local data part 1, local data part 2.
    Large(u32, u32, u32),
}

impl Community {
    /// Parse `a:b` or `large:a:b:c`. The error says what was wrong, without the field name.
    pub fn parse(s: &str) -> Result<Community, String> {
        if let Some(rest) = s.strip_prefix("large:") {
            let parts: Vec<&str> = rest.split(':').collect();
            if parts.len() != 3 {
                return Err(format!(
                    "invalid large community {s:?}: expected large:<global>:<local1>:<local2>"
                ));
            }
            let mut v = [0u32; 3];
            for (slot, (part, name)) in v.iter_mut().zip(parts.iter().zip([
                "global administrator",
                "local data 1",
                "local data 2",
            ])) {
                *slot = digits::<u32>(part).ok_or_else(|| {
                    format!("invalid large community {s:?}: {name} {part:?} is not a number in 0..=4294967295")
                })?;
            }
            return Ok(Community::Large(v[0], v[1], v[2]));
        }
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 2 {
            return Err(format!(
                "invalid community {s:?}: expected <0-65535>:<0-65535> (or large:<a>:<b>:<c>)"
            ));
        }
        let hi = digits::<u16>(parts[0]).ok_or_else(|| {
            format!(
                "invalid community {s:?}: first part {:?} is not a number in 0..=65535",
                parts[0]
            )
        })?;
        let lo = digits::<u16>(parts[1]).ok_or_else(|| {
            format!(
                "invalid community {s:?}: second part {:?} is not a number in 0..=65535",
                parts[1]
            )
        })?;
        Ok(Community::Standard((u32::from(hi) << 16) | u32::from(lo)))
    }
}

/// A plain unsigned decimal (no sign, no spaces), as Go's `strconv.ParseUint` reads it.
fn digits<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

impl fmt::Display for Community {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Community::Standard(v) => write!(f, "{}:{}", v >> 16, v & 0xffff),
            Community::Large(a, b, c) => write!(f, "large:{a}:{b}:{c}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_and_large_round_trip_through_display() {
        let c = Community::parse("65535:65282").unwrap();
        assert_eq!(c, Community::Standard(0xffff_ff02));
        assert_eq!(c.to_string(), "65535:65282");
        let l = Community::parse("large:4200000001:1:4294967295").unwrap();
        assert_eq!(l, Community::Large(4_200_000_001, 1, u32::MAX));
        assert_eq!(l.to_string(), "large:4200000001:1:4294967295");
    }

    #[test]
    fn malformed_communities_say_which_part() {
        let cases = [
            ("65536:1", "first part \"65536\""),
            ("1:x", "second part \"x\""),
            ("1:2:3", "expected <0-65535>:<0-65535>"),
            ("no-export", "expected <0-65535>:<0-65535>"),
            ("large:1:2", "expected large:<global>"),
            ("large:1:2:4294967296", "local data 2 \"4294967296\""),
            ("-1:2", "first part \"-1\""),
            ("+1:2", "first part \"+1\""),
        ];
        for (s, want) in cases {
            let err = Community::parse(s).expect_err(s);
            assert!(err.contains(want), "{s}: {err}");
        }
    }
}
