//! OPEN checks (RFC 4271 §6.2, RFC 5492 §5, RFC 6286 §2.2): whether the peer's OPEN is
//! acceptable for this peering, and if not, the NOTIFICATION that says why. The version is
//! checked by the codec already (2/1).

use std::net::Ipv4Addr;

use bytes::BytesMut;

use super::config::Config;
use crate::negotiate::common_families;
use crate::wire::error::{code, open_sub};
use crate::wire::{Capability, Notification, Open};

/// A refused OPEN: the NOTIFICATION to send and a sentence for the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRefused {
    pub notification: Notification,
    pub reason: String,
}

fn refuse(subcode: u8, data: Vec<u8>, reason: String) -> OpenRefused {
    OpenRefused {
        notification: Notification::new(code::OPEN_MESSAGE, subcode, data),
        reason,
    }
}

/// Capabilities as the OPEN carries them (code, length, value), the data of a 2/7.
fn encode_caps<'a>(caps: impl Iterator<Item = &'a Capability>) -> Vec<u8> {
    let mut out = BytesMut::new();
    for c in caps {
        // A capability of ours that does not encode cannot have been sent either; skip it.
        let _ = c.encode(&mut out);
    }
    out.to_vec()
}

/// Check the peer's OPEN against the config and our OPEN.
pub fn check_open(config: &Config, ours: &Open, theirs: &Open) -> Result<(), OpenRefused> {
    // RFC 4271 §6.2 / RFC 6793 §4: the AS is capability 65 when present, else My AS.
    let peer_as = theirs.asn();
    if peer_as != config.peer_as {
        // RFC 4271 defines no data for 2/2; FRR and GoBGP send the offending AS, so do we.
        let data = match u16::try_from(peer_as) {
            Ok(a) => a.to_be_bytes().to_vec(),
            Err(_) => peer_as.to_be_bytes().to_vec(),
        };
        return Err(refuse(
            open_sub::BAD_PEER_AS,
            data,
            format!("peer AS {peer_as}, expected {}", config.peer_as),
        ));
    }
    // RFC 4271 §4.2: the hold time MUST be 0 or at least three seconds.
    if matches!(theirs.hold_time, 1 | 2) {
        return Err(refuse(
            open_sub::UNACCEPTABLE_HOLD_TIME,
            Vec::new(),
            format!("hold time {} s (must be 0 or >= 3)", theirs.hold_time),
        ));
    }
    // RFC 6286 §2.2: the identifier is any non-zero 4-octet value; within an AS it must differ
    // from ours (for eBGP equal identifiers are allowed; collisions then compare AS numbers).
    if theirs.bgp_id == Ipv4Addr::UNSPECIFIED {
        return Err(refuse(
            open_sub::BAD_BGP_IDENTIFIER,
            Vec::new(),
            "BGP identifier 0.0.0.0".to_string(),
        ));
    }
    if config.is_ibgp() && theirs.bgp_id == config.router_id {
        return Err(refuse(
            open_sub::BAD_BGP_IDENTIFIER,
            Vec::new(),
            format!("iBGP peer uses our own BGP identifier {}", theirs.bgp_id),
        ));
    }
    // RFC 5492 §5: a capability we cannot do without is missing: 2/7, data = that capability.
    let missing: Vec<u8> = config
        .required_capabilities
        .iter()
        .copied()
        .filter(|code| !theirs.capabilities().any(|c| c.code() == *code))
        .collect();
    if !missing.is_empty() {
        let placeholders: Vec<Capability> = missing
            .iter()
            .filter(|code| !ours.capabilities().any(|c| c.code() == **code))
            .map(|code| Capability::Unknown {
                code: *code,
                value: bytes::Bytes::new(),
            })
            .collect();
        let data = encode_caps(
            ours.capabilities()
                .filter(|c| missing.contains(&c.code()))
                .chain(placeholders.iter()),
        );
        return Err(refuse(
            open_sub::UNSUPPORTED_CAPABILITY,
            data,
            format!("peer did not advertise required capabilities {missing:?}"),
        ));
    }
    // No family in common: nothing could ever be exchanged. FRR refuses the same way (2/7 with
    // our Multiprotocol capabilities).
    if common_families(ours, theirs).is_empty() {
        let data = encode_caps(
            ours.capabilities()
                .filter(|c| matches!(c, Capability::Multiprotocol(_))),
        );
        return Err(refuse(
            open_sub::UNSUPPORTED_CAPABILITY,
            data,
            format!(
                "no address family in common (ours {:?}, peer's {:?})",
                ours.families(),
                theirs.families()
            ),
        ));
    }
    Ok(())
}
