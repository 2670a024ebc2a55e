//! AS_PATH and AS4_PATH values (RFC 4271 §4.3, RFC 5065 §3 confederation segments, RFC 6793):
//! a list of segments, each a type and 1..=255 AS numbers. AS numbers are kept as u32 whatever
//! their width on the wire; the width comes from the context (AS_PATH) or is always 4 octets
//! (AS4_PATH).

use bytes::{BufMut, BytesMut};

use super::EncodeError;

/// Path segment types (RFC 4271 §4.3, RFC 5065 §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SegmentType {
    Set,
    Sequence,
    ConfedSequence,
    ConfedSet,
}

impl SegmentType {
    pub fn code(self) -> u8 {
        match self {
            SegmentType::Set => 1,
            SegmentType::Sequence => 2,
            SegmentType::ConfedSequence => 3,
            SegmentType::ConfedSet => 4,
        }
    }

    pub fn from_code(code: u8) -> Option<SegmentType> {
        Some(match code {
            1 => SegmentType::Set,
            2 => SegmentType::Sequence,
            3 => SegmentType::ConfedSequence,
            4 => SegmentType::ConfedSet,
            _ => return None,
        })
    }

    pub fn is_confed(self) -> bool {
        matches!(self, SegmentType::ConfedSequence | SegmentType::ConfedSet)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Segment {
    pub kind: SegmentType,
    pub asns: Vec<u32>,
}

impl Segment {
    pub fn new(kind: SegmentType, asns: impl Into<Vec<u32>>) -> Segment {
        Segment {
            kind,
            asns: asns.into(),
        }
    }

    /// This segment's contribution to the path length (RFC 4271 §9.1.2.2 a: an AS_SET counts
    /// as 1; RFC 5065 §5.3: confederation segments count 0).
    pub fn path_len(&self) -> usize {
        match self.kind {
            SegmentType::Sequence => self.asns.len(),
            SegmentType::Set => usize::from(!self.asns.is_empty()),
            SegmentType::ConfedSequence | SegmentType::ConfedSet => 0,
        }
    }
}

/// An AS_PATH or AS4_PATH value. The empty path (no segments) is what iBGP-originated routes
/// carry.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct AsPath {
    pub segments: Vec<Segment>,
}

impl AsPath {
    /// A path of one AS_SEQUENCE (or the empty path for no ASes).
    pub fn sequence(asns: impl Into<Vec<u32>>) -> AsPath {
        let asns = asns.into();
        if asns.is_empty() {
            return AsPath::default();
        }
        AsPath {
            segments: vec![Segment::new(SegmentType::Sequence, asns)],
        }
    }

    /// Path length for route selection (RFC 4271 §9.1.2.2 a, RFC 5065 §5.3).
    pub fn path_len(&self) -> usize {
        self.segments.iter().map(Segment::path_len).sum()
    }

    /// Every AS number in wire order.
    pub fn asns(&self) -> impl Iterator<Item = u32> + '_ {
        self.segments.iter().flat_map(|s| s.asns.iter().copied())
    }

    /// The leftmost AS of the first AS_SEQUENCE segment: the neighbouring AS (RFC 4271 §9.1.2.2).
    pub fn first_as(&self) -> Option<u32> {
        match self.segments.first() {
            Some(Segment {
                kind: SegmentType::Sequence,
                asns,
            }) => asns.first().copied(),
            _ => None,
        }
    }

    /// The rightmost AS of the last segment when that is an AS_SEQUENCE: the origin AS.
    pub fn origin_as(&self) -> Option<u32> {
        match self.segments.last() {
            Some(Segment {
                kind: SegmentType::Sequence,
                asns,
            }) => asns.last().copied(),
            _ => None,
        }
    }

    /// Decode with `four_octet` (4-byte) or 2-byte AS numbers. RFC 7606 §7.2 (and RFC 6793 §6
    /// for AS4_PATH): malformed when a segment type is unknown, a segment has zero length, a
    /// segment overruns the attribute, or a lone octet is left after the last segment.
    pub(crate) fn decode(buf: &[u8], four_octet: bool) -> Result<AsPath, (usize, String)> {
        let width = if four_octet { 4 } else { 2 };
        // Count segments first so the outer Vec is sized once.
        let mut count = 0;
        let mut pos = 0;
        while pos < buf.len() {
            let (Some(&kind), Some(&n)) = (buf.get(pos), buf.get(pos + 1)) else {
                return Err((pos, "a lone octet after the last segment".into()));
            };
            if SegmentType::from_code(kind).is_none() {
                return Err((pos, format!("unknown segment type {kind}")));
            }
            if n == 0 {
                return Err((pos, "segment of zero length".into()));
            }
            let end = pos + 2 + usize::from(n) * width;
            if end > buf.len() {
                return Err((
                    pos,
                    format!(
                        "segment of {n} ASes needs {} bytes, {} left",
                        usize::from(n) * width,
                        buf.len() - pos - 2
                    ),
                ));
            }
            pos = end;
            count += 1;
        }
        let mut segments = Vec::with_capacity(count);
        let mut rest = buf;
        while let Some((&[kind, n], r)) = rest.split_first_chunk::<2>() {
            let Some(kind) = SegmentType::from_code(kind) else {
                break;
            };
            let Some((body, r)) = r.split_at_checked(usize::from(n) * width) else {
                break;
            };
            rest = r;
            let asns = if four_octet {
                body.chunks_exact(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            } else {
                body.chunks_exact(2)
                    .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                    .collect()
            };
            segments.push(Segment { kind, asns });
        }
        Ok(AsPath { segments })
    }

    /// Encode with 4- or 2-byte AS numbers. With 2 bytes, an AS number above 65535 is written
    /// as AS_TRANS (RFC 6793 §4.2.2); `as4::split_for_old_speaker` produces the AS4_PATH that
    /// carries the real numbers. Empty segments are skipped (they would be malformed); a
    /// segment of more than 255 ASes is an error.
    pub(crate) fn encode(&self, four_octet: bool, out: &mut BytesMut) -> Result<(), EncodeError> {
        for s in &self.segments {
            if s.asns.is_empty() {
                continue;
            }
            let n = u8::try_from(s.asns.len()).map_err(|_| EncodeError::FieldTooLong {
                what: "AS_PATH segment",
                len: s.asns.len(),
                bits: 8,
            })?;
            out.put_u8(s.kind.code());
            out.put_u8(n);
            for &asn in &s.asns {
                if four_octet {
                    out.put_u32(asn);
                } else {
                    out.put_u16(u16::try_from(asn).unwrap_or(super::AS_TRANS));
                }
            }
        }
        Ok(())
    }
}
