#!/usr/bin/env bash
# The main job: installs what ipp needs, builds it, starts a 4-engine cluster, pushes the
# sample plugin, runs the C++ tutorial, the same steps with ippctl and from Python (installing the
# Python client), and stops the cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh build -DIPP_BUILD_TESTS=OFF

export IPP_PROFILE_DIR="${IPP_PROFILE_DIR:-$PWD/build/profile}"
ippctl() { echo "\$ ippctl $*" >&2; ./build/bin/ippctl "$@"; }
trap './build/bin/ippctl cluster stop >/dev/null 2>&1 || true' EXIT

ippctl cluster stop >/dev/null 2>&1 || true
ippctl cluster start -n 4
ippctl push build/plugins/arith.so
echo "\$ tutorial" >&2
./build/bin/tutorial
ippctl ids
ippctl apply mul 5 6 --targets 0
ippctl apply mul 5 6
ippctl map mul 1..9 2..10
ippctl apply wait_here 2
ippctl execute 'import sysinfo; a = sysinfo.getpid()'
ippctl pull a
ippctl scatter x 1..10
ippctl map mul @x @x
ippctl gather x
# The same from Python: the package is installed into the interpreter's site-packages.
cmake --install build --component python >/dev/null
echo "\$ python3 samples/python/tutorial.py" >&2
"${PYTHON:-/usr/bin/python3}" samples/python/tutorial.py
ippctl cluster stop
trap - EXIT
