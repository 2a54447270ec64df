#!/usr/bin/env bash
# Builds oneTBB and libzmq with ThreadSanitizer, from the Debian 12 source packages of the very
# versions installed, into a cache, and prints the prefix to pass as CMAKE_PREFIX_PATH.
#
# Why: ThreadSanitizer sees the order of two threads' memory accesses only through code it
# instruments. Debian's libtbb and libzmq are not instrumented, so every hand-over inside them
# (a task given to a pool thread, a message passed between threads) looks like a data race:
# a ThreadSanitizer build against them reports hundreds of races that are not there. Built
# from the same sources with -fsanitize=thread, they report none (docs/reliability.md).
#
# Usage: scripts/tsan-deps.sh            (prints the prefix on its last line)
# The cache ($IPP_TSAN_CACHE, default ~/.cache/ipp/tsan) keeps one prefix per pair of versions;
# a second run only prints it. Needs root (or sudo) the first time, to add Debian's deb-src
# entry when there is none and install dpkg-dev.
set -euo pipefail

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

source_version() { dpkg-query -W -f='${source:Version}' "$1"; }
tbb_version=$(source_version libtbb-dev)
zmq_version=$(source_version libzmq3-dev)
cache=${IPP_TSAN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ipp/tsan}
prefix="$cache/onetbb-$tbb_version+zeromq3-$zmq_version"
if [ -f "$prefix/.complete" ]; then
  echo "$prefix"
  exit 0
fi

# The source packages: Debian's deb-src entry for bookworm, added when the machine has none.
if ! grep -rqsE '^(deb-src|Types:.*deb-src)' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  $SUDO tee /etc/apt/sources.list.d/ipp-deb-src.sources >/dev/null <<'EOF'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  $SUDO apt-get update -qq >&2
fi
if ! command -v dpkg-source >/dev/null; then
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    dpkg-dev >&2
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
# apt-get source unpacks each package with Debian's patches applied.
apt-get source -qq "onetbb=$tbb_version" "zeromq3=$zmq_version" >&2
tbb_src=$(find . -maxdepth 1 -type d -name 'onetbb-*' | head -1)
zmq_src=$(find . -maxdepth 1 -type d -name 'zeromq3-*' | head -1)

rm -rf "$prefix"
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
common=("${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_INSTALL_PREFIX="$prefix"
  -DCMAKE_INSTALL_LIBDIR=lib)
# oneTBB knows how to instrument itself; its tests and allocator are not needed.
cmake -S "$tbb_src" -B tbb-build "${common[@]}" -DTBB_SANITIZE=thread -DTBB_TEST=OFF \
  -DTBB_STRICT=OFF -DTBBMALLOC_BUILD=OFF -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1" >&2
cmake --build tbb-build -j "${IPP_JOBS:-2}" >&2
cmake --install tbb-build >&2
# libzmq: compiler intrinsics for its atomics (ThreadSanitizer cannot see inline assembly),
# CURVE with libsodium as Debian builds it.
tsan="-fsanitize=thread -fno-omit-frame-pointer -O1 -g1"
cmake -S "$zmq_src" -B zmq-build "${common[@]}" -DCMAKE_C_FLAGS="$tsan" -DCMAKE_CXX_FLAGS="$tsan" \
  -DCMAKE_SHARED_LINKER_FLAGS=-fsanitize=thread -DENABLE_INTRINSICS=ON -DBUILD_TESTS=OFF \
  -DBUILD_STATIC=OFF -DWITH_DOCS=OFF -DWITH_DOC=OFF -DWITH_PERF_TOOL=OFF -DWITH_LIBSODIUM=ON \
  -DENABLE_CURVE=ON -DENABLE_DRAFTS=OFF -DWITH_TLS=OFF -DENABLE_WS=OFF \
  -DENABLE_PRECOMPILED=OFF >&2
cmake --build zmq-build -j "${IPP_JOBS:-2}" >&2
cmake --install zmq-build >&2
touch "$prefix/.complete"
echo "$prefix"
