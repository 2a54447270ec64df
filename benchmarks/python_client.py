#!/usr/bin/env python3
"""ipp's Python client beside ipyparallel's, on clusters of the same size on this host, in one
run: a Python function's round trip on one engine, a map over four engines, and many small
load-balanced tasks. ipyparallel's figure is the floor; the ratio is ipp's time over it.

    PYTHONPATH=build/python python3 benchmarks/python_client.py [--bin build/bin] [--engines 4]

Needs ipyparallel (Debian's python3-ipyparallel) for the floor.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def mul(a, b):
    return a * b


def round_trip(call, n):
    """Median seconds of `n` calls after 20 to warm up."""
    for _ in range(20):
        call()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        call()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def best(run, rounds=5):
    """Best seconds of `rounds` runs after one to warm up."""
    run()
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        run()
        out.append(time.perf_counter() - t)
    return min(out)


def measure(rc, lview, dview, direct_one, tasks, elements):
    xs = list(range(elements))
    return {
        "apply": round_trip(lambda: direct_one.apply_sync(mul, 5, 6), 300),
        "map": best(lambda: dview.map_sync(mul, xs, xs)),
        "tasks": best(lambda: [r.get() for r in [lview.apply_async(mul, i, i)
                                                  for i in range(tasks)]], 3),
    }


def ipp_figures(bin_dir, engines, tasks, elements):
    import ipp
    profile = tempfile.mkdtemp(prefix="ipp-bench-python-")
    ctl = os.path.join(bin_dir, "ippctl")
    try:
        subprocess.run([ctl, "--profile-dir", profile, "cluster", "start", "-n", str(engines)],
                       check=True, capture_output=True)
        rc = ipp.Client(profile_dir=profile)
        out = measure(rc, rc.load_balanced_view(), rc[:], rc[0], tasks, elements)
        arith = os.path.join(bin_dir, "..", "plugins", "arith.so")
        rc.push_plugin(arith)
        mul_task = rc.plugin("arith").mul
        out["apply_compiled"] = round_trip(lambda: rc[0].apply_sync(mul_task, 5, 6), 300)
        rc.close()
        return out
    finally:
        subprocess.run([ctl, "--profile-dir", profile, "cluster", "stop"], capture_output=True)
        shutil.rmtree(profile, ignore_errors=True)


def ipyparallel_figures(engines, tasks, elements):
    import ipyparallel
    profile = tempfile.mkdtemp(prefix="ipyparallel-bench-")
    cluster = subprocess.Popen(["ipcluster", "start", "-n", str(engines), "--profile-dir",
                                profile, "--log-level=ERROR"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        rc = None
        while rc is None:
            try:
                rc = ipyparallel.Client(profile_dir=profile, timeout=5)
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        rc.wait_for_engines(engines, timeout=60)
        out = measure(rc, rc.load_balanced_view(), rc[:], rc[0], tasks, elements)
        rc.shutdown(hub=True)
        rc.close()
        return out
    finally:
        try:
            cluster.wait(timeout=20)
        except subprocess.TimeoutExpired:
            cluster.terminate()
            cluster.wait(timeout=10)
        shutil.rmtree(profile, ignore_errors=True)


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bin", default=os.path.join(here, "..", "build", "bin"))
    parser.add_argument("--engines", type=int, default=4)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--elements", type=int, default=10000)
    a = parser.parse_args()
    floor = ipyparallel_figures(a.engines, a.tasks, a.elements)
    ours = ipp_figures(a.bin, a.engines, a.tasks, a.elements)
    print()
    print(f"floor: ipyparallel {__import__('ipyparallel').__version__}, {a.engines} engines: "
          f"apply_sync {floor['apply'] * 1e6:.0f} us, map of {a.elements} "
          f"{floor['map'] * 1e3:.1f} ms, {a.tasks} tasks {floor['tasks'] * 1e3:.0f} ms")
    print()
    rows = [
        ("apply_sync(mul, 5, 6) of a Python function, one engine", ours["apply"] * 1e6, "us",
         ours["apply"] / floor["apply"]),
        ("apply_sync of the compiled arith.mul, one engine", ours["apply_compiled"] * 1e6, "us",
         ours["apply_compiled"] / floor["apply"]),
        (f"map_sync(mul, xs, xs) of {a.elements} elements, {a.engines} engines",
         ours["map"] * 1e3, "ms", ours["map"] / floor["map"]),
        (f"{a.tasks} load-balanced apply_async(mul), then get", ours["tasks"] * 1e3, "ms",
         ours["tasks"] / floor["tasks"]),
    ]
    print(f"{'#':<4} {'figure':<60} {'measured':>10} {'':<4} {'x ipyparallel':>14}")
    for name, value, unit, ratio in rows:
        print(f"{'13':<4} {name:<60} {value:>10.1f} {unit:<4} {ratio:>14.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
