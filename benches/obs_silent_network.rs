//! Networks that fail the way real ones do (issue 15) in real OBS, OBS's own RTMP output and
//! obs-goaway side by side on the same fault: OBS 29.0.2 (host), 30.2.3 (trixie root) and
//! 32.2.2 (sid root) in one network namespace, the reference ingest in another, each case of
//! `common::silent::Case::all` 9 s after the first frame (`common::obs_silent`): the path
//! silent for 3, 12 and 25 s, a path change, a 12 s silence with the plugin's resume buffer
//! cut to 4 s, and a `tbf` link at half the bitrate for 10 s. Prints each run's timeline,
//! then one table row per run: the README's side-by-side rows.
//!
//! Run as root after `tests/run.sh` prepared the machine (OBS, the Debian roots, nftables,
//! the release build of the plugin): `cargo bench --bench obs_silent_network [FILTER...]`,
//! where a row runs if its "version output case" contains any FILTER (`29.0.2`,
//! `obs-goaway`, `silent 3 s`; `"path change" "4 s buffer" tbf` for the last three cases).
//! About 35 minutes for all: 36 runs of 36 to 44 s, one OBS at a time.

#[path = "../tests/common/mod.rs"]
mod common;

use common::obs::ObsVersion;
use common::obs_silent::{run, Output};
use common::silent::{Case, Measured};

fn main() {
    common::netns::require_root();
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let mut rows = Vec::new();
    for version in ObsVersion::ALL {
        for case in Case::all() {
            for output in Output::ALL {
                let name = format!("{} {} {}", version.version(), output.name(), case.name);
                if !filters.is_empty() && !filters.iter().any(|f| name.contains(f.as_str())) {
                    continue;
                }
                let measured = run(version, output, &case);
                eprintln!("{name}:\n{}\n", measured.outcome);
                rows.push(
                    measured
                        .measured
                        .row(&[version.version(), output.name(), case.name]),
                );
            }
        }
    }
    println!("{}", Measured::header(&["OBS", "output", "case"]));
    for row in rows {
        println!("{row}");
    }
}
