#!/usr/bin/env bash
# Installs what ipp needs, builds it three times (normal; with AddressSanitizer +
# UndefinedBehaviorSanitizer; with ThreadSanitizer), runs the whole test suite on the first two
# and the components with threads on the third; then runs every fuzz target for a bounded time
# (scripts/fuzz.sh).
# This is the README's test command; .ci/run calls it.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh

# run_suite BUILD_DIR [cmake args...]; CTEST_ARGS: more ctest arguments (a label to run).
run_suite() {
  local build=$1
  shift
  echo "=== build: $build ($*)"
  # Explicit returns: set -e does not apply inside a function called as `run_suite ... || ...`.
  ./scripts/build.sh "$build" -DIPP_WERROR=ON "$@" || return
  echo "=== tests: $build"
  # shellcheck disable=SC2086
  (cd "$build" && ctest --output-on-failure -j "${IPP_JOBS:-2}" --timeout 900 ${CTEST_ARGS:-}) ||
    return
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
# ThreadSanitizer, against oneTBB and libzmq built instrumented from Debian's sources
# (scripts/tsan-deps.sh says why), over the components with threads: runtime and executor,
# controller, client, net, and every cluster test, whose controllers and engines are built with
# it too. Every process writes its reports under tsan-reports/; any report fails the run.
tsan_prefix=$(./scripts/tsan-deps.sh | tail -1)
rm -rf build-tsan/tsan-reports
mkdir -p build-tsan/tsan-reports
tsan_status=0
TSAN_OPTIONS="halt_on_error=0:second_deadlock_stack=1:log_path=$PWD/build-tsan/tsan-reports/report" \
CTEST_ARGS="-L runtime|controller|cluster|net|sdk" \
  run_suite build-tsan -DIPP_SANITIZE=thread -DIPP_BUILD_BENCHMARKS=OFF \
  -DCMAKE_PREFIX_PATH="$tsan_prefix" -DTBB_DIR="$tsan_prefix/lib/cmake/TBB" \
  -DZeroMQ_DIR="$tsan_prefix/lib/cmake/ZeroMQ" -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG" ||
  tsan_status=$?
if compgen -G "build-tsan/tsan-reports/report*" >/dev/null; then
  echo "=== ThreadSanitizer reports:"
  cat build-tsan/tsan-reports/report*
  exit 1
fi
((tsan_status == 0)) || exit "$tsan_status"
# Every parser of outside bytes under libFuzzer, 30 s each, from the checked-in corpus.
IPP_FUZZ_SECONDS=${IPP_FUZZ_SECONDS:-30} ./scripts/fuzz.sh
