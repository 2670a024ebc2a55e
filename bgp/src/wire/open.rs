//! OPEN (RFC 4271 §4.2) with capabilities in optional parameters (RFC 5492) and the RFC 9072
//! extended optional-parameters length. How capabilities were grouped into parameters is kept,
//! so a decoded OPEN re-encodes byte for byte (FRR sends one capability per parameter, BIRD
//! all of them in one).

use std::net::Ipv4Addr;

use bytes::{BufMut, BytesMut};
use nom::bytes::complete::take;
use nom::number::complete::{be_u16, be_u32, be_u8};
use nom::Parser;

pub use super::capability::*;
use super::error::{code, open_sub};
use super::parse::{run, NomResult};
use super::{DecodeError, EncodeError, Family};

/// RFC 6793: the 2-octet placeholder for a 4-octet AS number.
pub const AS_TRANS: u16 = 23456;
/// The optional parameter type that carries capabilities (RFC 5492).
pub const PARAM_CAPABILITIES: u8 = 2;
/// RFC 9072: Non-Ext OP Type value announcing the extended layout.
const EXTENDED_PARAMS_MARK: u8 = 255;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Open {
    pub version: u8,
    /// "My Autonomous System" as on the wire: AS_TRANS when the real AS needs 4 octets.
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    /// Capabilities, one inner list per Capabilities optional parameter.
    pub params: Vec<Vec<Capability>>,
    /// Whether the optional parameters use the RFC 9072 extended (2-octet length) layout.
    pub extended_params: bool,
}

impl Open {
    /// An OPEN for `asn` with all `capabilities` in one optional parameter. The caller adds
    /// `Capability::FourOctetAs` itself (it is what makes a 4-octet `asn` reach the peer).
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr, capabilities: Vec<Capability>) -> Open {
        Open {
            version: 4,
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time,
            bgp_id,
            params: if capabilities.is_empty() {
                Vec::new()
            } else {
                vec![capabilities]
            },
            extended_params: false,
        }
    }

    pub fn capabilities(&self) -> impl Iterator<Item = &Capability> {
        self.params.iter().flatten()
    }

    /// The 4-octet AS from capability 65, if advertised.
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities().find_map(|c| match c {
            Capability::FourOctetAs(asn) => Some(*asn),
            _ => None,
        })
    }

    /// The sender's AS: capability 65 when present, else the 2-octet field.
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }

    /// Families from Multiprotocol capabilities; RFC 4760 §8: none at all means IPv4 unicast.
    pub fn families(&self) -> Vec<Family> {
        let mut v: Vec<Family> = self
            .capabilities()
            .filter_map(|c| match c {
                Capability::Multiprotocol(f) => Some(*f),
                _ => None,
            })
            .collect();
        if v.is_empty()
            && !self
                .capabilities()
                .any(|c| matches!(c, Capability::Multiprotocol(_)))
        {
            v.push(Family::IPV4_UNICAST);
        }
        v
    }

    pub(crate) fn decode_body(body: &[u8]) -> Result<Open, DecodeError> {
        let fixed = |i| -> NomResult<(u8, u16, u16, u32, u8)> {
            (be_u8, be_u16, be_u16, be_u32, be_u8).parse(i)
        };
        let (rest, (version, my_as, hold_time, bgp_id, opt_len)) = run(
            body,
            body,
            fixed,
            code::OPEN_MESSAGE,
            0,
            "OPEN fixed fields",
        )?;
        if version != 4 {
            // RFC 4271 §6.2: the data is the largest locally supported version.
            return Err(DecodeError::new(
                code::OPEN_MESSAGE,
                open_sub::UNSUPPORTED_VERSION,
                0,
                format!("BGP version {version}, only 4 is supported"),
            )
            .with_data(4u16.to_be_bytes()));
        }
        let mut extended_params = false;
        let (params_region, param_len_bytes) =
            if opt_len != 0 && rest.first() == Some(&EXTENDED_PARAMS_MARK) {
                // RFC 9072 §2: Non-Ext OP Len, Non-Ext OP Type = 255, then a 2-octet length.
                extended_params = true;
                let (r, (_, len)) = run(
                    body,
                    rest,
                    |i| (be_u8, be_u16).parse(i),
                    code::OPEN_MESSAGE,
                    0,
                    "extended optional parameters length",
                )?;
                (r, usize::from(len))
            } else {
                (rest, usize::from(opt_len))
            };
        if params_region.len() != param_len_bytes {
            return Err(DecodeError::new(
                code::OPEN_MESSAGE,
                0,
                super::parse::offset(body, params_region),
                format!(
                    "optional parameters length {param_len_bytes} but {} bytes follow",
                    params_region.len()
                ),
            ));
        }
        let mut params = Vec::new();
        let mut input = params_region;
        while !input.is_empty() {
            let param_at = super::parse::offset(body, input);
            let header = |i| -> NomResult<(u8, u16)> {
                if extended_params {
                    (be_u8, be_u16).parse(i)
                } else {
                    (be_u8, be_u8.map(u16::from)).parse(i)
                }
            };
            let (r, (ptype, plen)) = run(
                body,
                input,
                header,
                code::OPEN_MESSAGE,
                0,
                "optional parameter header",
            )?;
            let (r, value) = run(
                body,
                r,
                |i| take(usize::from(plen)).parse(i),
                code::OPEN_MESSAGE,
                0,
                "optional parameter value",
            )?;
            input = r;
            if ptype != PARAM_CAPABILITIES {
                // RFC 4271 §6.2: an unrecognized optional parameter.
                return Err(DecodeError::new(
                    code::OPEN_MESSAGE,
                    open_sub::UNSUPPORTED_OPTIONAL_PARAMETER,
                    param_at,
                    format!("optional parameter type {ptype} is not supported"),
                ));
            }
            params.push(decode_capabilities(body, value)?);
        }
        Ok(Open {
            version,
            my_as,
            hold_time,
            bgp_id: Ipv4Addr::from(bgp_id),
            params,
            extended_params,
        })
    }

    pub(crate) fn encode_body(&self, out: &mut BytesMut) -> Result<(), EncodeError> {
        let mut encoded = Vec::with_capacity(self.params.len());
        for caps in &self.params {
            let mut b = BytesMut::new();
            for c in caps {
                c.encode(&mut b)?;
            }
            encoded.push(b);
        }
        let short_total: usize = encoded.iter().map(|b| 2 + b.len()).sum();
        let extended =
            self.extended_params || short_total > 255 || encoded.iter().any(|b| b.len() > 255);
        out.put_u8(self.version);
        out.put_u16(self.my_as);
        out.put_u16(self.hold_time);
        out.put_u32(u32::from(self.bgp_id));
        if extended {
            let total: usize = encoded.iter().map(|b| 3 + b.len()).sum();
            let total = u16::try_from(total).map_err(|_| EncodeError::FieldTooLong {
                what: "optional parameters",
                len: total,
                bits: 16,
            })?;
            out.put_u8(255);
            out.put_u8(EXTENDED_PARAMS_MARK);
            out.put_u16(total);
            for b in &encoded {
                out.put_u8(PARAM_CAPABILITIES);
                out.put_u16(b.len() as u16);
                out.put_slice(b);
            }
        } else {
            out.put_u8(short_total as u8);
            for b in &encoded {
                out.put_u8(PARAM_CAPABILITIES);
                out.put_u8(b.len() as u8);
                out.put_slice(b);
            }
        }
        Ok(())
    }
}

fn decode_capabilities<'a>(
    body: &'a [u8],
    mut input: &'a [u8],
) -> Result<Vec<Capability>, DecodeError> {
    let mut caps = Vec::new();
    while !input.is_empty() {
        let (r, (code, value)) = run(
            body,
            input,
            |i| {
                let (i, (c, l)) = (be_u8, be_u8).parse(i)?;
                let (i, v) = take(usize::from(l)).parse(i)?;
                Ok((i, (c, v)))
            },
            code::OPEN_MESSAGE,
            0,
            "capability",
        )?;
        caps.push(Capability::decode(code, value));
        input = r;
    }
    Ok(caps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{Context, Message};

    fn sample() -> Open {
        Open::new(
            4_200_000_001,
            90,
            Ipv4Addr::new(10, 99, 0, 1),
            vec![
                Capability::Multiprotocol(Family::IPV4_UNICAST),
                Capability::Multiprotocol(Family::IPV6_UNICAST),
                Capability::RouteRefresh,
                Capability::FourOctetAs(4_200_000_001),
                Capability::GracefulRestart(GracefulRestart {
                    flags: GracefulRestart::RESTART_STATE,
                    restart_time: 120,
                    families: vec![GrFamily {
                        family: Family::IPV4_UNICAST,
                        flags: GrFamily::FORWARDING,
                    }],
                }),
                Capability::Unknown {
                    code: 200,
                    value: bytes::Bytes::from_static(b"\x01\x02"),
                },
            ],
        )
    }

    #[test]
    fn open_round_trips_and_maps_as_trans() {
        let open = sample();
        assert_eq!(open.my_as, AS_TRANS);
        assert_eq!(open.asn(), 4_200_000_001);
        let cx = Context::default();
        let bytes = Message::Open(open.clone()).to_bytes(&cx).expect("encode");
        assert_eq!(
            Message::decode(&bytes, &cx).expect("decode"),
            Message::Open(open)
        );
    }

    #[test]
    fn extended_optional_parameters_are_used_when_needed_and_decoded() {
        let mut open = sample();
        // 60 unknown capabilities of 4 bytes each: 360 bytes of parameters > 255.
        open.params = (0..60)
            .map(|i| {
                vec![Capability::Unknown {
                    code: 180 + (i % 20) as u8,
                    value: bytes::Bytes::from_static(b"\0\0"),
                }]
            })
            .collect();
        let cx = Context::default();
        let bytes = Message::Open(open.clone()).to_bytes(&cx).expect("encode");
        assert_eq!(&bytes[28..30], &[255, 255], "RFC 9072 marker");
        let back = match Message::decode(&bytes, &cx).expect("decode") {
            Message::Open(o) => o,
            other => panic!("{other:?}"),
        };
        assert!(back.extended_params);
        assert_eq!(back.params, open.params);
    }

    #[test]
    fn bad_version_asks_for_version_4() {
        let mut bytes = Message::Open(sample())
            .to_bytes(&Context::default())
            .expect("encode");
        bytes[19] = 3;
        let e = Message::decode(&bytes, &Context::default()).expect_err("v3");
        assert_eq!((e.code, e.subcode, &e.data[..]), (2, 1, &[0u8, 4][..]));
        assert_eq!(e.offset, 19);
    }

    #[test]
    fn unknown_optional_parameter_is_2_4() {
        let mut bytes = Message::Open(sample())
            .to_bytes(&Context::default())
            .expect("encode");
        bytes[29] = 1; // first parameter type: deprecated authentication
        let e = Message::decode(&bytes, &Context::default()).expect_err("param 1");
        assert_eq!((e.code, e.subcode), (2, 4));
    }

    #[test]
    fn truncated_capability_is_an_open_error_not_a_panic() {
        let bytes = Message::Open(sample())
            .to_bytes(&Context::default())
            .expect("encode");
        for cut in 20..bytes.len() {
            let mut b = bytes[..cut].to_vec();
            let len = b.len() as u16;
            b[16..18].copy_from_slice(&len.to_be_bytes());
            match Message::decode(&b, &Context::default()) {
                Err(e) => assert!(e.code == 1 || e.code == 2, "cut {cut}: {e}"),
                Ok(m) => panic!("cut {cut} decoded: {m:?}"),
            }
        }
    }

    #[test]
    fn malformed_known_capability_is_kept_as_unknown() {
        let cap = Capability::decode(cap_code::FOUR_OCTET_AS, &[0, 1]);
        assert_eq!(
            cap,
            Capability::Unknown {
                code: 65,
                value: bytes::Bytes::from_static(&[0, 1])
            }
        );
    }
}
