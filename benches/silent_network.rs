//! Networks that die silently (issue 15): the CLI publisher (`goaway publish --realtime`) and
//! the reference ingest (`goaway serve`) in two network namespaces, through each fault of
//! `common::silent::Case::all` (silent 3, 12 and 25 s; a path change; a silence longer than
//! a small resume buffer; a `tbf` link at half the bitrate). Prints one table row per case.
//!
//! The same silences in real OBS (the plugin and OBS's own output, 29.0.2 / 30.2.3 / 32.2.2),
//! with the same columns: benches/obs_silent_network.rs.
//!
//! Run as root after `tests/run.sh` prepared the machine (ffmpeg, nftables):
//! `cargo bench --bench silent_network`. About 5 minutes: each case is a 40 s stream.

#[path = "../tests/common/mod.rs"]
mod common;

use common::silent::{run, Case, Measured};

fn main() {
    common::netns::require_root();
    let only: Option<String> = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let mut rows = Vec::new();
    for case in Case::all() {
        if only
            .as_deref()
            .is_some_and(|name| !case.name.contains(name))
        {
            continue;
        }
        let measured = run(&case);
        eprintln!("{}: {measured:?}", case.name);
        rows.push(measured.row(&["goaway publish", case.name]));
    }
    println!("{}", Measured::header(&["publisher", "case"]));
    for row in rows {
        println!("{row}");
    }
}
