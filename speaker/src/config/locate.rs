//! Find the line and column of a field path in YAML text, for errors found after serde is done
//! (semantic checks). serde_yaml has no spans, but it stamps an error with the position of the
//! node being read when the error was raised: so we walk the document down the path and raise
//! an error at the target node, then read the position back from that error.

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_yaml::Value;
use std::fmt;

use super::error::{FieldPath, Location, Seg};

const HIT: &str = "bgplane-config-locate-hit";

/// The 1-based position of the node at `path` in `text`, or of its deepest existing ancestor.
pub fn locate(text: &str, path: &FieldPath) -> Option<Location> {
    // Try the whole path, then shorter prefixes: a missing key points at its parent mapping.
    for len in (0..=path.0.len()).rev() {
        let probe = Probe {
            path: &path.0[..len],
        };
        let de = serde_yaml::Deserializer::from_str(text);
        if let Err(e) = probe.deserialize(de) {
            // Anything but our own error (a syntax error, say) means there is nothing to find.
            if !e.to_string().contains(HIT) {
                return None;
            }
            return e.location().map(|loc| Location {
                line: loc.line(),
                column: loc.column(),
            });
        }
    }
    None
}

struct Probe<'p> {
    path: &'p [Seg],
}

impl<'de> DeserializeSeed<'de> for Probe<'_> {
    type Value = ();

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        if self.path.is_empty() {
            d.deserialize_any(Hit)
        } else {
            d.deserialize_any(Walk { path: self.path })
        }
    }
}

/// At the target: fail, so the error carries the node's position.
struct Hit;

impl<'de> Visitor<'de> for Hit {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("anything")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Err(E::custom(HIT))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Err(E::custom(HIT))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Err(E::custom(HIT))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Err(E::custom(HIT))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Err(E::custom(HIT))
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(HIT))
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Err(E::custom(HIT))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(HIT))
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(HIT))
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Err(de::Error::custom(HIT))
    }
}

/// On the way: descend into the child the next segment names, skip everything else.
struct Walk<'p> {
    path: &'p [Seg],
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("anything")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_none<E: de::Error>(self) -> Result<(), E> {
        Ok(())
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let (first, rest) = match self.path.split_first() {
            Some((Seg::Index(i), rest)) => (*i, rest),
            _ => {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                return Ok(());
            }
        };
        for _ in 0..first {
            if seq.next_element::<IgnoredAny>()?.is_none() {
                return Ok(());
            }
        }
        seq.next_element_seed(Probe { path: rest })?;
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let want = match self.path.split_first() {
            Some((Seg::Key(k), rest)) => Some((k.as_str(), rest)),
            _ => None,
        };
        while let Some(key) = map.next_key::<Value>()? {
            match (&key, want) {
                (Value::String(k), Some((w, rest))) if k == w => {
                    map.next_value_seed(Probe { path: rest })?;
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
peers:
- my-asn: 64500
  peer-asn: 64501
  peer-address: 10.0.0.1
- my-asn: 64500
  peer-asn: abc
address-pools:
- name: p
  addresses: [10.0.0.0/24, 10.1.0.0/24]
";

    fn p(segs: &[Seg]) -> FieldPath {
        FieldPath(segs.to_vec())
    }

    fn k(s: &str) -> Seg {
        Seg::Key(s.to_string())
    }

    #[test]
    fn finds_scalars_sequences_and_flow_items() {
        let at = |segs: &[Seg]| locate(DOC, &p(segs)).map(|l| (l.line, l.column));
        assert_eq!(
            at(&[k("peers"), Seg::Index(1), k("peer-asn")]),
            Some((6, 13))
        );
        assert_eq!(
            at(&[k("peers"), Seg::Index(0), k("peer-address")]),
            Some((4, 17))
        );
        assert_eq!(
            at(&[
                k("address-pools"),
                Seg::Index(0),
                k("addresses"),
                Seg::Index(1)
            ]),
            Some((9, 28))
        );
        // A missing key points at its parent mapping.
        assert_eq!(
            at(&[k("peers"), Seg::Index(1), k("peer-address")]),
            Some((5, 3))
        );
        // A missing index points at the sequence.
        assert_eq!(at(&[k("peers"), Seg::Index(7)]), Some((2, 1)));
    }
}
