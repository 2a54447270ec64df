#!/usr/bin/env bash
# Builds the fuzz targets (fuzz/) with clang, libFuzzer, AddressSanitizer and UBSan, and runs
# each for a bounded time (IPP_FUZZ_SECONDS, default 30) from its checked-in corpus. Inputs it
# finds go to a temporary directory that is removed at the end; a crash fails the run, naming
# the input, which then belongs in fuzz/corpus/NAME (the test builds replay that directory).
# Memory is bounded by libFuzzer (-rss_limit_mb) and each input by a time-out.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${IPP_FUZZ_SECONDS:-30}
build=${IPP_FUZZ_BUILD:-build-fuzz}
export CC=clang CXX=clang++
IPP_BUILD_TARGET=fuzz_all ./scripts/build.sh "$build" -DIPP_FUZZ=ON -DIPP_SANITIZE=address \
  -DIPP_WERROR=ON -DIPP_BUILD_TESTS=OFF -DIPP_BUILD_SAMPLES=OFF -DIPP_BUILD_BENCHMARKS=OFF \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -DNDEBUG"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export ASAN_OPTIONS=detect_leaks=1:halt_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
failed=()
for name in literal statements value header connection_file envelope; do
  mkdir -p "$work/$name"
  echo "=== fuzz: $name, ${seconds} s"
  if ! "$build/fuzz/fuzz_$name" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
      -artifact_prefix="$work/$name-" -print_final_stats=1 "$work/$name" "fuzz/corpus/$name" \
      > "$work/$name.log" 2>&1; then
    tail -40 "$work/$name.log"
    for a in "$work/$name"-*; do
      [ -e "$a" ] || continue
      echo "--- input that failed ($a), base64:"
      base64 "$a" | head -20
    done
    failed+=("$name")
  else
    grep -E "stat::number_of_executed_units|stat::new_units_added" "$work/$name.log" || true
  fi
done
if ((${#failed[@]})); then
  echo "fuzz: failed: ${failed[*]}"
  exit 1
fi
echo "fuzz: every target ran ${seconds} s without a failure"
