//! `bgplane`: the agent and its CLI. The agent arrives with the sessions issue; for now the
//! binary only reports its version so the workspace layout is exercised end to end.

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        Some("--version") | Some("version") => {
            println!("bgplane {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        other => anyhow::bail!(
            "bgplane: unknown command {:?}; the agent is not built yet (see README)",
            other.unwrap_or("")
        ),
    }
}
