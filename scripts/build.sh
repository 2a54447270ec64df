#!/usr/bin/env bash
# Configures and builds ipp. Usage: scripts/build.sh BUILD_DIR [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: scripts/build.sh BUILD_DIR [cmake args...]}
shift
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
# ccache keeps compiled objects across build directories (a clean clone on the same machine hits
# it too), so a rebuild after touching one source takes seconds.
# base_dir makes paths relative to the checkout, so the cache serves any clone; it is set in the
# launcher so that `cmake --build BUILD --target NAME` run by hand hits the same entries.
# nohashdir lets builds with debug information (the sanitized one) hit across clones too (their
# debug information then names the directory of the clone that compiled first).
launcher=()
command -v ccache >/dev/null && launcher=("-DCMAKE_CXX_COMPILER_LAUNCHER=env;CCACHE_BASEDIR=$PWD;CCACHE_NOHASHDIR=1;ccache")
cmake -S . -B "$build" "${generator[@]}" "${launcher[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
# IPP_BUILD_TARGET: build that target only (scripts/fuzz.sh builds fuzz_all).
cmake --build "$build" -j "${IPP_JOBS:-2}" ${IPP_BUILD_TARGET:+--target "$IPP_BUILD_TARGET"}
