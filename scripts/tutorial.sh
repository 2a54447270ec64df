#!/usr/bin/env bash
# The main job: installs what ipp needs, builds it, and runs the tour of the plugin runtime
# with the sample plugins.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh build -DIPP_BUILD_TESTS=OFF
./build/bin/local_tour build/plugins
