#!/usr/bin/env bash
# Fuzzes perfgate's parsers with libFuzzer (cargo-fuzz) for a fixed time per target, then prints how
# many inputs each target tried and what it found.
#
#   scripts/fuzz.sh                   # every target, 120 s each
#   SECS=600 scripts/fuzz.sh h1_response
#   SECS=30 scripts/fuzz.sh baseline_file results_file
#
# Targets (fuzz/fuzz_targets/): h1_response (the HTTP/1.1 response head and framing parser of the
# load generator; properties in perfgate-runtime/src/http/fuzz.rs, plus a bound on its peak heap),
# baseline_file, results_file, scenario_files (the CLI's file parsers; cargo-perfgate/src/fuzz.rs).
# `cargo test --workspace` runs the same properties as a short proptest pass.
#
# Needs a nightly toolchain and cargo-fuzz (`rustup toolchain install nightly`, `cargo install
# cargo-fuzz`); the corpus grows in fuzz/corpus/<target>/ (started from fuzz/seeds/), crashes land in
# fuzz/artifacts/<target>/ (both ignored by git: keep a crash as a regression test next to the
# parser). Exit status: 0 when no target crashed, 1 when one did, 2 when the tools are missing.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

SECS=${SECS:-120}
ALL=(h1_response baseline_file results_file scenario_files)
TARGETS=("$@")
if [ ${#TARGETS[@]} -eq 0 ]; then TARGETS=("${ALL[@]}"); fi

if ! cargo +nightly --version >/dev/null 2>&1; then
  echo "error: no nightly toolchain (rustup toolchain install nightly)" >&2
  exit 2
fi
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
  echo "error: cargo-fuzz is not installed (cargo install cargo-fuzz)" >&2
  exit 2
fi

echo "== building the targets (nightly, AddressSanitizer, optimised)"
cargo +nightly fuzz build -O

crashed=0
summary=()
for t in "${TARGETS[@]}"; do
  mkdir -p "corpus/$t" "artifacts/$t"
  log=$(mktemp)
  echo "== $t for ${SECS}s"
  set +e
  # -timeout: one input taking a second is a hang (the parsers are linear); -rss_limit_mb: the
  # whole process, far above what any input should need.
  cargo +nightly fuzz run -O "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$SECS" -timeout=1 -rss_limit_mb=1024 -max_len=70000 -print_final_stats=1 \
    >"$log" 2>&1
  status=$?
  set -e
  runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
  if [ $status -ne 0 ]; then
    crashed=1
    tail -40 "$log"
    summary+=("$t: CRASH after ${runs:-?} inputs (see fuzz/artifacts/$t/)")
  else
    summary+=("$t: ${runs:-?} inputs in ${SECS}s, coverage ${cov:-?} edges, no crash")
  fi
  rm -f "$log"
done

echo "== summary"
printf '%s\n' "${summary[@]}"
exit $crashed
