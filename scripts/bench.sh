#!/usr/bin/env bash
# Installs what ipp needs, builds it optimised, and runs the benchmark suite: the in-process
# micro-benchmarks (Google Benchmark) and the end-to-end figures on real local clusters, each
# beside the raw ZeroMQ floor measured in the same run. Prints tables; writes
# build-bench/bench-micro.json and build-bench/bench.json. Usage: scripts/bench.sh [ipp-bench args]
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-deps.sh
./scripts/build.sh build-bench -DCMAKE_BUILD_TYPE=Release -DIPP_BUILD_TESTS=OFF >/dev/null
echo "=== in-process (Google Benchmark)"
build-bench/bin/ipp-bench-micro --benchmark_min_time=0.2 \
  --benchmark_out=build-bench/bench-micro.json --benchmark_out_format=json
echo "=== end to end (real clusters on 127.0.0.1)"
build-bench/bin/ipp-bench --json build-bench/bench.json "$@"
echo "=== the Python client beside ipyparallel's (4 engines each)"
PYTHONPATH=build-bench/python "${PYTHON:-/usr/bin/python3}" benchmarks/python_client.py --bin build-bench/bin
