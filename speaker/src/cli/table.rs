//! Plain-text tables for humans, in the style of `gobgp neighbor` / `birdc show protocols`.

use crate::api::{PeerJson, RouteJson};

/// Left-aligned columns, two spaces apart.
fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let n = cells.len();
        for (i, (c, w)) in cells.into_iter().zip(&widths).enumerate() {
            out.push_str(c);
            if i + 1 < n {
                out.push_str(&" ".repeat(w - c.chars().count() + 2));
            }
        }
        out.push('\n');
    };
    line(header.to_vec(), &mut out);
    for r in rows {
        line(r.iter().map(String::as_str).collect(), &mut out);
    }
    out
}

/// `hh:mm:ss`, or `Nd hh:mm:ss` past a day.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if d > 0 {
        format!("{d}d {h:02}:{m:02}:{s:02}")
    } else {
        format!("{h:02}:{m:02}:{s:02}")
    }
}

pub fn peers(peers: &[PeerJson]) -> String {
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|p| {
            vec![
                p.peer_address.clone(),
                p.peer_asn.to_string(),
                p.local_asn.to_string(),
                if p.state == "Established" {
                    duration(p.uptime_seconds)
                } else {
                    if p.flaps > 0 { "down" } else { "never" }.to_string()
                },
                p.state.clone(),
                p.received.total.to_string(),
                p.advertised.total.to_string(),
                p.last_error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    render(
        &[
            "Peer",
            "AS",
            "Local AS",
            "Up/Down",
            "State",
            "#Received",
            "#Advertised",
            "Last error",
        ],
        &rows,
    )
}

pub fn routes(routes: &[RouteJson]) -> String {
    let rows: Vec<Vec<String>> = routes
        .iter()
        .map(|r| {
            let mut prefix = r.prefix.clone();
            if let Some(id) = r.path_id {
                prefix.push_str(&format!(" (id {id})"));
            }
            let mut comms = r.communities.join(" ");
            if !r.large_communities.is_empty() {
                if !comms.is_empty() {
                    comms.push(' ');
                }
                comms.push_str(&r.large_communities.join(" "));
            }
            vec![
                r.peer_address.clone(),
                prefix,
                r.next_hop.clone().unwrap_or_default(),
                r.as_path
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(" "),
                r.origin.clone(),
                r.med.map(|m| m.to_string()).unwrap_or_default(),
                r.local_pref.map(|m| m.to_string()).unwrap_or_default(),
                comms,
                if r.stale { "stale" } else { "" }.to_string(),
            ]
        })
        .collect();
    render(
        &[
            "Peer",
            "Prefix",
            "Next hop",
            "AS path",
            "Origin",
            "MED",
            "LocPrf",
            "Communities",
            "",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_like_gobgp() {
        assert_eq!(duration(0), "00:00:00");
        assert_eq!(duration(3661), "01:01:01");
        assert_eq!(duration(90061), "1d 01:01:01");
    }

    #[test]
    fn columns_line_up() {
        let t = render(&["A", "Bee"], &[vec!["long".into(), "x".into()]]);
        assert_eq!(t, "A     Bee\nlong  x\n");
    }
}
