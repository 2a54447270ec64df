#!/usr/bin/env bash
# Installs everything ipp needs to build, test and benchmark, from Debian 12's packages.
# Idempotent: packages already present are left as they are. Run as root (or with sudo).
set -euo pipefail

packages=(
  build-essential cmake ninja-build pkg-config git ca-certificates procps dpkg-dev
  iproute2 util-linux tcpdump openssh-server openssh-client faketime
  libzmq3-dev cppzmq-dev libsodium-dev
  libboost-dev libboost-filesystem-dev
  libflatbuffers-dev flatbuffers-compiler
  libtbb-dev libfmt-dev libspdlog-dev libcli11-dev nlohmann-json3-dev libsqlite3-dev
  libgtest-dev libgmock-dev googletest libbenchmark-dev
  clang-format clang-tidy ccache
  clang libclang-rt-14-dev
  python3 python3-dev pybind11-dev python3-pybind11 python3-numpy python3-pytest python3-tqdm
  python3-cloudpickle ipython3 python3-ipyparallel
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
