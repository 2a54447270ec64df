#!/usr/bin/env bash
# Installs what ipp needs, builds it twice (normal, and with AddressSanitizer +
# UndefinedBehaviorSanitizer), and runs the whole test suite on each build; then runs every fuzz
# target for a bounded time (scripts/fuzz.sh).
# This is the README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh

run_suite() {
  local build=$1
  shift
  echo "=== build: $build ($*)"
  ./scripts/build.sh "$build" -DIPP_WERROR=ON "$@"
  echo "=== tests: $build"
  (cd "$build" && ctest --output-on-failure -j "${IPP_JOBS:-2}" --timeout 900)
}

# Debug information is most of what the compiler writes: the first build has none, the
# sanitized one line tables only (enough for the file and line of every frame in a report).
run_suite build -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -DNDEBUG"
# halt_on_error: the first sanitizer report fails the test that caused it. The benchmarks are
# built (with -Werror) by the first build only: no test runs them, and a sanitized build of
# them would only lengthen the run.
ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=1 \
UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  run_suite build-asan -DIPP_SANITIZE=address -DIPP_BUILD_BENCHMARKS=OFF \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG"
# Every parser of outside bytes under libFuzzer, 30 s each, from the checked-in corpus.
IPP_FUZZ_SECONDS=${IPP_FUZZ_SECONDS:-30} ./scripts/fuzz.sh
