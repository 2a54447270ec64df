#!/usr/bin/env bash
# Builds the Debian packages of a build directory (cpack) and checks them as a user would:
# apt can install them on this Debian 12 (a dry run: every dependency resolves), and from the
# packages' files alone (extracted, not installed) a cluster starts, a plugin made with the
# packaged template builds against the packaged SDK and runs, and the packaged Python client
# imports and drives it. Usage: scripts/test-deb.sh BUILD_DIR. Cleans up what it made.
set -euo pipefail
build=$(cd "${1:?usage: scripts/test-deb.sh BUILD_DIR}" && pwd)
work=$(mktemp -d /tmp/ipp-test-deb.XXXXXX)
root=$work/root
profile=$work/profile
cleanup() {
  "$root/usr/bin/ippctl" --profile-dir "$profile" cluster stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

echo "=== cpack"
(cd "$build" && cpack -G DEB -B "$work/debs" >"$work/cpack.log" 2>&1) || {
  cat "$work/cpack.log"
  exit 1
}
debs=("$work"/debs/*.deb)
for deb in "${debs[@]}"; do
  echo "--- $(basename "$deb")"
  dpkg-deb -f "$deb" Package Version Depends
done
for name in ipp ipp-dev; do
  compgen -G "$work/debs/${name}_*.deb" >/dev/null || { echo "no $name package"; exit 1; }
done

echo "=== apt-get install --simulate"
apt-get install --simulate -qq "${debs[@]}" >"$work/apt.log" 2>&1 || {
  cat "$work/apt.log"
  exit 1
}

echo "=== from the packages' files"
for deb in "${debs[@]}"; do dpkg-deb -x "$deb" "$root"; done
test -x "$root/usr/bin/ippcontroller" && test -x "$root/usr/bin/ippengine"
test -f "$root/usr/lib/x86_64-linux-gnu/ipp/plugins/sysinfo.so" ||
  test -f "$root/usr/lib/ipp/plugins/sysinfo.so"
test -f "$root/usr/include/ipp/plugin.hpp"
test -f "$root/usr/lib/cmake/ipp/ippConfig.cmake" ||
  compgen -G "$root/usr/lib/*/cmake/ipp/ippConfig.cmake" >/dev/null

# A plugin from the packaged template, built against the packaged SDK.
(cd "$work" && "$root/usr/bin/ipp-sdk" new shapes >/dev/null)
cmake -S "$work/shapes" -B "$work/shapes/build" -DCMAKE_PREFIX_PATH="$root/usr" >"$work/shapes.log" 2>&1 &&
  cmake --build "$work/shapes/build" -j "${IPP_JOBS:-2}" >>"$work/shapes.log" 2>&1 || {
  cat "$work/shapes.log"
  exit 1
}
plugin=$(find "$work/shapes/build" -name 'shapes.so' | head -1)
test -n "$plugin"

ippctl() { "$root/usr/bin/ippctl" --profile-dir "$profile" "$@"; }
ippctl cluster start -n 2 >/dev/null
ippctl push "$plugin" >/dev/null
ippctl plugins
ippctl apply sysinfo.getpid --targets 0 >/dev/null
if compgen -G "$work/debs/python3-ipp_*.deb" >/dev/null; then
  site=$(dirname "$(find "$root/usr/lib" -path '*dist-packages/ipp/__init__.py' | head -1)")
  PYTHONPATH=$(dirname "$site") IPP_PROFILE_DIR=$profile "${PYTHON:-/usr/bin/python3}" -c '
import ipp
rc = ipp.Client()
assert rc.ids == [0, 1], rc.ids
assert rc[:].apply_sync(lambda a, b: a * b, 6, 7) == [42, 42]
print("python3-ipp: ok")'
fi
ippctl cluster stop >/dev/null
echo "=== packages: ok"
