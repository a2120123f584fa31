#!/usr/bin/env bash
# Runs each cargo-fuzz (libFuzzer, coverage-guided) target for a bounded time and prints, per
# target, the executions, the corpus size and the findings (crash/leak/timeout/oom artifacts).
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [target ...]     default 60 s, all five targets
#
# Needs a nightly toolchain (`rustup toolchain install nightly`) and cargo-fuzz
# (`cargo install cargo-fuzz`). Corpora live in fuzz/corpus/<target> (not committed); seeds are
# in fuzz/seeds/<target>; crashing inputs found are copied to tests/regressions/<target>/.
# Exit status: 0 when no target found anything, 1 otherwise, 2 when the tools are missing.
set -u
cd "$(dirname "$0")"
secs=${1:-60}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(frame_decode request_parse decrypt cli_parse answer_open)

if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "fuzz/run.sh: needs cargo-fuzz and a nightly toolchain" >&2
    exit 2
fi
cargo +nightly fuzz build -O >/dev/null 2>&1 || { echo "fuzz/run.sh: build failed" >&2; exit 2; }

status=0
printf '%-14s %8s %12s %10s %8s %s\n' target seconds executions exec/s corpus findings
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    cp -n seeds/$t/* "corpus/$t/" 2>/dev/null
    before=$(ls "artifacts/$t" | wc -l)
    extra=()
    [ "$t" = cli_parse ] && extra+=(-dict=dict/cli.dict)
    log="artifacts/$t.log"
    cargo +nightly fuzz run -O "$t" "corpus/$t" -- \
        -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=1024 -malloc_limit_mb=256 \
        -timeout=10 "${extra[@]}" >"$log" 2>&1
    rc=$?
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    corpus=$(ls "corpus/$t" | wc -l)
    after=$(ls "artifacts/$t" | wc -l)
    found=$((after - before))
    if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then
        status=1
        mkdir -p "../tests/regressions/$t"
        for f in "artifacts/$t"/*; do
            [ -f "$f" ] && cp -n "$f" "../tests/regressions/$t/"
        done
        grep -m3 -E 'panicked|ERROR: libFuzzer|SUMMARY' "$log" | sed 's/^/    /'
    fi
    printf '%-14s %8s %12s %10s %8s %s\n' "$t" "$secs" "${execs:-?}" "${rate:-?}" "$corpus" \
        "$([ "$found" -gt 0 ] || [ "$rc" -ne 0 ] && echo "$found new artifact(s), rc=$rc (see fuzz/$log)" || echo none)"
done
exit $status
