//! Byte vectors captured from real FRR, BIRD, GoBGP and ExaBGP sessions (bgp/tests/vectors/,
//! each file says where it came from and what the receiver negotiated). For every vector:
//! decode(raw) == expected, where expected is the reviewed dump in
//! bgp/tests/vectors/expected/<name>.txt, and encode(decode(raw)) == raw byte for byte.
//! `BGPLANE_REGEN=1 cargo test -p bgp --test vectors` rewrites the expected dumps; review the
//! diff before committing it.

use std::path::{Path, PathBuf};

use std::collections::BTreeSet;

use bgp::wire::{Context, Family, Message, MpNlri, Nlri, Update};
use ipnet::IpNet;

struct Vector {
    name: String,
    raw: Vec<u8>,
    cx: Context,
    /// The `# what:` line, written by the capture tool's own (Python) decoder.
    what: String,
}

fn parse_family(s: &str) -> Family {
    match s {
        "ipv4-unicast" => Family::IPV4_UNICAST,
        "ipv6-unicast" => Family::IPV6_UNICAST,
        other => panic!("unknown family {other:?} in a context line"),
    }
}

fn parse_vector(path: &Path) -> Vector {
    let text = std::fs::read_to_string(path).expect("read vector");
    let mut hex = String::new();
    let mut cx = None;
    let mut source = false;
    let mut what = String::new();
    for line in text.lines() {
        if let Some(c) = line.strip_prefix("#") {
            let c = c.trim();
            if let Some(w) = c.strip_prefix("what:") {
                what = w.trim().to_string();
            }
            if c.starts_with("source:") {
                source = true;
            }
            if let Some(ctx) = c.strip_prefix("context:") {
                let mut cxv = Context::default();
                for kv in ctx.split_whitespace() {
                    let (k, v) = kv.split_once('=').expect("context key=value");
                    match (k, v) {
                        ("as4", v) => cxv.four_octet_as = v == "yes",
                        ("extmsg", v) => cxv.extended_message = v == "yes",
                        ("addpath-rx", "none") => {}
                        ("addpath-rx", v) => {
                            cxv.add_path = v.split(',').map(parse_family).collect();
                        }
                        other => panic!("{}: unknown context item {other:?}", path.display()),
                    }
                }
                cx = Some(cxv);
            }
        } else {
            hex.extend(line.chars().filter(|c| !c.is_whitespace()));
        }
    }
    assert!(source, "{}: no '# source:' provenance line", path.display());
    let raw = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex digit pair"))
        .collect();
    Vector {
        name: path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("utf-8 file name")
            .to_string(),
        raw,
        what,
        cx: cx.unwrap_or_else(|| panic!("{}: no '# context:' line", path.display())),
    }
}

fn vectors() -> Vec<Vector> {
    let dir = vector_dir();
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("vector dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "hex"))
        .collect();
    paths.sort();
    paths.iter().map(|p| parse_vector(p)).collect()
}

fn vector_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

#[test]
fn captured_vectors_decode_to_the_reviewed_values_and_reencode_byte_for_byte() {
    let vs = vectors();
    assert!(
        vs.len() >= 20,
        "expected the captured vector set, found {}",
        vs.len()
    );
    let regen = std::env::var_os("BGPLANE_REGEN").is_some();
    let expected_dir = vector_dir().join("expected");
    let mut failures = Vec::new();
    for v in &vs {
        let msg = match Message::decode(&v.raw, &v.cx) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{}: decode failed: {e}", v.name));
                continue;
            }
        };
        let dump = format!("{msg:#?}\n");
        let exp_path = expected_dir.join(format!("{}.txt", v.name));
        if regen {
            std::fs::create_dir_all(&expected_dir).expect("mkdir expected");
            std::fs::write(&exp_path, &dump).expect("write expected");
        } else {
            match std::fs::read_to_string(&exp_path) {
                Ok(exp) if exp == dump => {}
                Ok(exp) => failures.push(format!(
                    "{}: decoded value differs from {}:\n--- expected\n{exp}\n--- got\n{dump}",
                    v.name,
                    exp_path.display()
                )),
                Err(e) => failures.push(format!("{}: {}: {e}", v.name, exp_path.display())),
            }
        }
        match msg.to_bytes(&v.cx) {
            Ok(b) if b[..] == v.raw[..] => {}
            Ok(b) => failures.push(format!(
                "{}: re-encoding differs:\n raw {:02x?}\n got {:02x?}",
                v.name,
                v.raw,
                &b[..]
            )),
            Err(e) => failures.push(format!("{}: encode failed: {e}", v.name)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Every prefix an UPDATE carries (announced or withdrawn, any field), with its path id.
fn prefixes(u: &Update) -> BTreeSet<(IpNet, Option<u32>)> {
    let mut set = BTreeSet::new();
    let mut add = |n: &Nlri| {
        set.insert((n.prefix, n.path_id));
    };
    u.withdrawn.iter().for_each(&mut add);
    u.nlri.iter().for_each(&mut add);
    if let Some(r) = u.mp_reach() {
        if let MpNlri::Prefixes(v) = &r.nlri {
            v.iter().for_each(&mut add);
        }
    }
    if let Some(r) = u.mp_unreach() {
        if let MpNlri::Prefixes(v) = &r.withdrawn {
            v.iter().for_each(&mut add);
        }
    }
    set
}

/// The prefixes the capture tool's independent decoder listed in `# what:` ("P" or
/// "P path-id N").
fn prefixes_in_what(what: &str) -> BTreeSet<(IpNet, Option<u32>)> {
    let words: Vec<&str> = what.split_whitespace().collect();
    let mut set = BTreeSet::new();
    for (i, w) in words.iter().enumerate() {
        let w = w.trim_end_matches([';', ',']);
        if let Ok(p) = w.parse::<IpNet>() {
            let id = match (words.get(i + 1), words.get(i + 2)) {
                (Some(&"path-id"), Some(n)) => n.trim_end_matches([';', ',']).parse().ok(),
                _ => None,
            };
            set.insert((p, id));
        }
    }
    set
}

#[test]
fn decoded_prefixes_match_the_capture_tools_independent_decode() {
    let mut checked = 0;
    for v in vectors() {
        let Ok(Message::Update(u)) = Message::decode(&v.raw, &v.cx) else {
            continue;
        };
        // A long UPDATE's what-line may be abbreviated; compare where it lists them all.
        if v.what.contains("...") || v.what.contains('…') {
            continue;
        }
        assert_eq!(
            prefixes(&u),
            prefixes_in_what(&v.what),
            "{}: {}",
            v.name,
            v.what
        );
        if let Some(f) = u.end_of_rib_family() {
            assert!(
                v.what.contains("End-of-RIB"),
                "{}: EoR {f} not in what-line",
                v.name
            );
        }
        checked += 1;
    }
    assert!(checked >= 25, "only {checked} UPDATE vectors cross-checked");
}
