//! `bgplane`: the agent (`bgplane agent --config FILE`) and its CLI (`bgplane peers`,
//! `bgplane routes received|advertised`).

use clap::Parser;

fn main() {
    let cli = speaker::cli::Cli::parse();
    if let Err(e) = speaker::cli::run(cli) {
        eprintln!("bgplane: {e:#}");
        std::process::exit(1);
    }
}
