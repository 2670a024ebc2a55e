//! Property tests over every message type under every context: decode(encode(x)) == x, and
//! the header's length field equals the number of bytes written. UPDATE strategies come from
//! `arbitrary`; OPEN, NOTIFICATION, ROUTE-REFRESH and KEEPALIVE strategies are here.

use std::net::Ipv4Addr;

use bytes::Bytes;
use proptest::collection::vec;
use proptest::prelude::*;

use super::arbitrary;
use super::*;

fn family() -> impl Strategy<Value = Family> {
    prop_oneof![
        Just(Family::IPV4_UNICAST),
        Just(Family::IPV6_UNICAST),
        (any::<u16>(), any::<u8>()).prop_map(|(a, s)| Family::new(a, s)),
    ]
}

fn capability() -> impl Strategy<Value = Capability> {
    let name = "[a-z0-9.-]{0,40}";
    prop_oneof![
        family().prop_map(Capability::Multiprotocol),
        Just(Capability::RouteRefresh),
        vec(
            (any::<u16>(), any::<u16>(), any::<u16>()).prop_map(|(a, s, n)| ExtendedNextHop {
                afi: Afi(a),
                safi: s,
                next_hop_afi: Afi(n),
            }),
            1..8
        )
        .prop_map(Capability::ExtendedNextHop),
        Just(Capability::ExtendedMessage),
        (0u8..16, 0u16..4096, vec((family(), any::<u8>()), 0..6)).prop_map(|(f, t, fams)| {
            Capability::GracefulRestart(GracefulRestart {
                flags: f,
                restart_time: t,
                families: fams
                    .into_iter()
                    .map(|(family, flags)| GrFamily { family, flags })
                    .collect(),
            })
        }),
        any::<u32>().prop_map(Capability::FourOctetAs),
        vec((family(), 0u8..4), 1..6).prop_map(|v| {
            Capability::AddPath(v.into_iter().map(|(f, m)| (f, AddPathMode(m))).collect())
        }),
        Just(Capability::EnhancedRouteRefresh),
        vec((family(), any::<u8>(), 0u32..(1 << 24)), 0..6).prop_map(|v| {
            Capability::LongLivedGr(
                v.into_iter()
                    .map(|(family, flags, stale_time)| LlgrFamily {
                        family,
                        flags,
                        stale_time,
                    })
                    .collect(),
            )
        }),
        (name, name).prop_map(|(hostname, domain)| Capability::Fqdn { hostname, domain }),
        // Codes no decoder claims, so Unknown comes back as Unknown.
        (prop_oneof![100u8..128, 129u8..255], vec(any::<u8>(), 0..40)).prop_map(|(code, v)| {
            Capability::Unknown {
                code,
                value: Bytes::from(v),
            }
        }),
    ]
}

fn open() -> impl Strategy<Value = Open> {
    (
        any::<u16>(),
        any::<u16>(),
        any::<u32>(),
        vec(vec(capability(), 1..5), 0..6),
        any::<bool>(),
    )
        .prop_map(|(my_as, hold_time, id, params, extended_params)| {
            // The encoder must switch to the RFC 9072 layout when the short one cannot hold
            // the parameters; the decoded value then says extended, so the generated one must.
            let lens: Vec<usize> = params
                .iter()
                .map(|caps| caps.iter().map(|c| 2 + c.value_len()).sum())
                .collect();
            let needed =
                lens.iter().any(|&l| l > 255) || lens.iter().map(|l| l + 2).sum::<usize>() > 255;
            Open {
                version: 4,
                my_as,
                hold_time,
                bgp_id: Ipv4Addr::from(id),
                params,
                extended_params: extended_params || needed,
            }
        })
}

fn message(cx: Context) -> impl Strategy<Value = Message> {
    prop_oneof![
        open().prop_map(Message::Open),
        arbitrary::update(&cx).prop_map(Message::Update),
        (any::<u8>(), any::<u8>(), vec(any::<u8>(), 0..300))
            .prop_map(|(c, s, d)| { Message::Notification(Notification::new(c, s, d)) }),
        Just(Message::Keepalive),
        (family(), 0u8..5).prop_map(|(family, st)| {
            let subtype = match st {
                0 => RefreshSubtype::Normal,
                1 => RefreshSubtype::BoRR,
                2 => RefreshSubtype::EoRR,
                v => RefreshSubtype::Reserved(v),
            };
            Message::RouteRefresh(RouteRefresh { family, subtype })
        }),
    ]
}

fn context_and_message() -> impl Strategy<Value = (Context, Message)> {
    arbitrary::context().prop_flat_map(|cx| (Just(cx.clone()), message(cx)))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_message_round_trips_under_every_context((cx, msg) in context_and_message()) {
        match msg.to_bytes(&cx) {
            Ok(bytes) => {
                let len = usize::from(u16::from_be_bytes([bytes[16], bytes[17]]));
                prop_assert_eq!(len, bytes.len(), "length field == bytes written");
                prop_assert!(bytes.len() <= cx.max_message_len());
                prop_assert_eq!(frame_len(&bytes, cx.max_message_len()), Ok(Some(bytes.len())));
                let back = Message::decode(&bytes, &cx);
                prop_assert_eq!(back, Ok(msg));
            }
            // Only a message too long for the session may fail to encode, and then it says so.
            Err(EncodeError::TooLong { len, max }) => prop_assert!(len > max),
            Err(e) => prop_assert!(false, "unexpected encode error {e}"),
        }
    }
}
