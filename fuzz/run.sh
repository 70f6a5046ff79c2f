#!/bin/sh
# Runs every fuzz target (or those named after the time) for SECONDS each, one at a time and
# nice'd, growing fuzz/corpus/<target>, then prints per target the executions and the new
# crash, timeout and out-of-memory inputs (in fuzz/artifacts/<target>/).
#
#   fuzz/run.sh [SECONDS] [TARGET...]        default: 60 seconds, every target
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`). cargo fuzz passes nightly-only flags to
# rustc (-Zsanitizer=address); RUSTC_BOOTSTRAP=1 makes the stable toolchain accept them, so
# no nightly toolchain is needed.
#
# Builds are optimized with debug assertions and overflow checks on (cargo fuzz's default).
# Every input runs with a 10 s time limit (a hang) and a 2 GiB memory limit (a length field
# trusted with an allocation). A finding is fixed in the decoder and its input kept in
# fuzz/regressions/<target>/, which `cargo test` runs through the same target code.
set -eu

seconds=${1:-60}
[ $# -gt 0 ] && shift
cd "$(dirname "$0")"
targets=${*:-$(cargo fuzz list)}
export RUSTC_BOOTSTRAP=1

nice -n 19 cargo fuzz build
summary=""
for target in $targets; do
    mkdir -p "corpus/$target" "artifacts/$target"
    before=$(ls "artifacts/$target" | wc -l)
    log="artifacts/$target.log"
    # libFuzzer exits non-zero on a finding; go on with the next target either way.
    nice -n 19 cargo fuzz run "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
        -print_final_stats=1 >"$log" 2>&1 || true
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    found=$(($(ls "artifacts/$target" | wc -l) - before))
    summary="$summary$(printf '%-16s %8ss %12s execs %3s new findings' \
        "$target" "$seconds" "${execs:-?}" "$found")
"
    printf '%s' "$summary" | tail -n 1
done
echo
echo "target           time           executions  findings (fuzz/artifacts/<target>/)"
printf '%s' "$summary"
