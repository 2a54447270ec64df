#!/usr/bin/env bash
# Configures and builds ipp. Usage: scripts/build.sh BUILD_DIR [extra cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:?usage: scripts/build.sh BUILD_DIR [cmake args...]}
shift
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
cmake -S . -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
cmake --build "$build" -j "${IPP_JOBS:-2}"
