"""The Python client against a real 4-engine cluster (conftest.py)."""

import os
import signal
import threading
import time

import numpy as np
import pytest

import ipp


def test_the_tutorial_steps(rc, arith):
    assert rc.ids == [0, 1, 2, 3]
    assert rc[0].apply_sync(arith.mul, 5, 6) == 30
    dview = rc[:]
    assert dview.apply_sync(arith.mul, 5, 6) == [30, 30, 30, 30]
    assert dview.map_sync(arith.mul, range(1, 10), range(2, 11)) == [2, 6, 12, 20, 30, 42, 56,
                                                                     72, 90]
    assert dview.map_sync(arith.mul, range(1, 4), 10) == [10, 20, 30]  # broadcast
    dview.execute("import sysinfo; a = sysinfo.getpid()", block=True, language="ipp")
    pids = dview["a"]
    assert len(set(pids)) == 4 and all(isinstance(p, int) and p > 0 for p in pids)
    t = time.monotonic()
    r = rc[0].apply_async(arith.wait_here, 2)
    assert not r.ready()
    r.get()
    assert 1.9 < time.monotonic() - t < 4


def test_views_by_index_slice_and_list(rc, arith):
    assert rc[0].targets == 0
    assert rc[::2].targets == [0, 2]
    assert rc[[1, 3]].targets == [1, 3]
    assert rc[-1].targets == 3  # as a list's index: the last engine
    assert rc[1:3].apply_sync(arith.mul, 2, 3) == [6, 6]
    with pytest.raises(IndexError):
        rc[10:]


def test_block_decides_what_apply_returns(rc, arith):
    view = rc[0]
    r = view.apply(arith.mul, 2, 4)
    assert isinstance(r, ipp.AsyncResult)
    assert r.get(timeout=10) == 8
    view.block = True
    assert view.apply(arith.mul, 2, 4) == 8


def test_values_cross_as_their_python_types(rc):
    view = rc[0]
    values = {"n": None, "b": True, "i": -7, "f": 2.5, "s": "text é", "by": b"\x00\x01",
              "l": [1, "two", [3.0]], "d": {"k": [1, 2]}, "r": range(2, 20, 3)}
    view.push(values, block=True)
    for name, value in values.items():
        assert view[name] == value, name
    # A tuple goes as a list, as ipp has no tuples.
    view["t"] = (1, 2)
    assert view["t"] == [1, 2]


def test_numpy_arrays_go_and_come_back_without_copies(rc):
    view = rc[1]
    for dtype in ("int8", "uint16", "int32", "int64", "uint64", "float32", "float64"):
        a = (np.arange(24) % 7).astype(dtype).reshape(2, 3, 4)
        view["a"] = a
        back = view["a"]
        assert isinstance(back, np.ndarray) and back.dtype == a.dtype and back.shape == a.shape
        assert (back == a).all()
        assert not back.flags.writeable  # a view over the received memory
    # A strided array is made contiguous on the way; a numpy scalar is its value.
    view["s"] = np.arange(10)[::3]
    assert view["s"].tolist() == [0, 3, 6, 9]
    view["x"] = np.float32(1.5)
    assert view["x"] == 1.5
    # Sent without a copy: the value is the array's memory.
    big = np.ones(1 << 20)
    assert ipp._core.to_value_repr(big[:3]) == "[1.0, 1.0, 1.0]"  # as ipp prints a float64 array
    back = ipp._core.round_trip(big)
    assert back.__array_interface__["data"][0] == big.__array_interface__["data"][0]


def test_what_cannot_travel_is_a_clear_type_error(rc, arith):
    with pytest.raises(TypeError, match="cannot send a value of type 'object'"):
        rc[0].apply_sync(arith.mul, object(), 1)
    with pytest.raises(TypeError, match="str keys"):
        rc[0].apply_sync(arith.mul, {1: 2}, 1)
    with pytest.raises(TypeError, match="format '\\?'"):
        rc[0].apply_sync(arith.mul, np.array([True, False]), 1)
    with pytest.raises(OverflowError, match="outside ipp's int64"):
        rc[0].apply_sync(arith.mul, 2**70, 1)
    with pytest.raises(TypeError, match="positional"):
        rc[0].apply_sync(arith.mul, a=1, b=2)
    with pytest.raises(TypeError, match="run it through a view"):
        arith.mul(5, 6)


def test_remote_failures_are_python_exceptions_with_the_remote_type(rc, arith):
    with pytest.raises(ipp.RemoteError) as e:
        rc[2].apply_sync(arith.mul, "a", 2)
    assert e.value.ename == "ipp::ArgumentError"
    assert "expected int64" in e.value.evalue
    assert e.value.engine_id == 2 and e.value.task == "arith.mul"
    assert isinstance(e.value, ipp.ArgumentError)
    with pytest.raises(ipp.TaskNotFound):
        rc[0].apply_sync("nosuch", 1)
    with pytest.raises(ipp.CompositeError) as c:
        rc[:].apply_sync(arith.mul, "a", 2)
    assert len(c.value.errors) == 4 and c.value.elist[0][0] == "ipp::ArgumentError"
    with pytest.raises(ipp.NameError):
        rc[0]["never_bound"]


def test_a_wait_past_its_timeout_raises_timeout_error(rc, arith):
    r = rc.load_balanced_view().apply_async(arith.wait_here, 1.5)
    t = time.monotonic()
    with pytest.raises(ipp.TimeoutError):
        r.get(timeout=0.3)
    assert time.monotonic() - t < 1.2
    with pytest.raises(TimeoutError):  # the builtin catches it too
        r.get(timeout=0)
    assert isinstance(r.get(timeout=10), int)  # wait_here gives its engine's pid
    assert r.wait(5) and r.ready() and r.successful()


def test_ctrl_c_interrupts_a_blocking_call(rc, arith):
    r = rc[3].apply_async(arith.wait_here, 3)
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    t = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        r.get()
    assert time.monotonic() - t < 1.5
    timer.join()
    r.get(timeout=10)  # the task itself went on


def test_waiting_releases_the_gil_so_threads_wait_together(rc, arith):
    lb = rc.load_balanced_view()
    results = []

    def wait_one():
        results.append(lb.apply_async(arith.wait_here, 1).get())

    counted = []
    stop = threading.Event()

    def count():  # pure Python: runs only while no wait holds the GIL
        n = 0
        while not stop.is_set():
            n += 1
        counted.append(n)

    threads = [threading.Thread(target=wait_one) for _ in range(3)]
    counter = threading.Thread(target=count)
    t = time.monotonic()
    counter.start()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    stop.set()
    counter.join()
    assert len(results) == 3
    assert time.monotonic() - t < 2.5  # together, not one after the other
    assert counted[0] > 100000


def test_progress_metadata_and_wait_interactive(rc, arith, capsys):
    lb = rc.load_balanced_view()
    r = lb.map_async(arith.wait_here, [0.1] * 8, chunksize=1)
    assert len(r) == 8
    r.wait_interactive(interval=0.05)
    assert r.progress == 8 and r.ready()
    md = r.metadata
    assert len(md) == 8
    assert all(m["engine_id"] in rc.ids for m in md)
    assert all(m["started"] <= m["completed"] for m in md)
    assert all(m["elapsed"] >= 0.09 for m in md)
    one = rc[0].apply_async(arith.mul, 1, 2)
    one.get()
    assert one.metadata["engine_id"] == 0


def test_scatter_gather_and_refs(rc, arith):
    dview = rc[:]
    dview.scatter("x", range(10), block=True)
    assert rc[0]["x"] == range(0, 3)
    assert dview.gather("x", block=True) == range(10)
    dview.scatter("y", np.arange(8.0), block=True)
    assert rc[1]["y"].tolist() == [2.0, 3.0]
    dview.push({"k": 5}, block=True)
    assert dview.apply_sync(arith.mul, ipp.ref("k"), 2) == [10, 10, 10, 10]


def test_load_balanced_flags_and_dependencies(rc, arith):
    lb = rc.load_balanced_view()
    first = lb.apply_async(arith.wait_here, 0.3)
    lb.set_flags(after=first, targets=[2])
    second = lb.apply_async(arith.mul, 3, 3)
    assert second.get(timeout=10) == 9
    assert first.ready()
    assert second.metadata["engine_id"] == 2


def test_hub_database_queue_status_and_resubmit(rc, arith):
    r = rc[1].apply_async(arith.mul, 7, 6)
    assert r.get() == 42
    assert rc.get_result(r.msg_id).get(timeout=10) == 42
    rows = rc.db_query({"msg_id": r.msg_id}, keys=["task", "engine", "status"])
    assert rows[0]["task"] == "arith.mul" and rows[0]["engine"] == 1
    rows = rc.db_query("task glob arith.*", keys=["task"])
    assert rows and all(row["task"].startswith("arith.") for row in rows)
    again = rc.resubmit([r.msg_id])
    assert again.get(timeout=10) == 42
    status = rc.queue_status()
    assert set(status) == {"0", "1", "2", "3"}
    assert all("queue" in s and "completed" in s for s in status.values())


def test_plugins_push_and_a_corrupt_one_is_refused(rc, tmp_path):
    from conftest import PLUGINS
    outcome = rc.push_plugin(os.path.join(PLUGINS, "arith.so"))
    assert outcome == {"0": "ok", "1": "ok", "2": "ok", "3": "ok"}
    bad = tmp_path / "bad.so"
    bad.write_bytes(b"not a shared object")
    with pytest.raises(ipp.PluginLoadError):
        rc.push_plugin(bad)
    assert any(p["name"] == "arith" for p in rc.plugins())


def test_connecting_to_no_cluster_says_so(tmp_path):
    with pytest.raises(ipp.ConnectionError):
        ipp.Client(profile_dir=str(tmp_path))
    with pytest.raises(TypeError):
        ipp.Client(nonsense=1)


def test_the_tutorial_sample_runs_in_ipython(cluster):
    import subprocess
    import sys
    sample = os.path.join(os.path.dirname(__file__), "..", "..", "samples", "python", "tutorial.py")
    env = dict(os.environ, IPP_PROFILE_DIR=cluster)
    out = subprocess.run([sys.executable, "-m", "IPython", "--quick", "--no-banner",
                          "--colors=NoColor", "--TerminalInteractiveShell.term_title=False",
                          "-c", f"%run {os.path.abspath(sample)}"],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr + out.stdout
    lines = out.stdout.strip().splitlines()
    assert lines[0] == "[0, 1, 2, 3]"
    assert lines[1] == "30"
    assert lines[2] == "[30, 30, 30, 30]"
    assert lines[3] == "[2, 6, 12, 20, 30, 42, 56, 72, 90]"
    pids = eval(lines[4])
    assert len(set(pids)) == 4
    waited = lines[5].split(" in ")
    assert eval(waited[0]) == pids
    assert 1.9 <= float(waited[1].split()[0]) < 4


def test_an_engine_that_dies_under_a_task_is_an_engine_error(tmp_path):
    from conftest import PLUGINS, ippctl
    if not PLUGINS:
        pytest.skip("IPP_PLUGIN_DIR is not set (run through ctest)")
    profile = str(tmp_path / "profile")
    ippctl(profile, "cluster", "start", "-n", "1", "--no-restart-engines")
    try:
        ippctl(profile, "push", os.path.join(PLUGINS, "arith.so"))
        rc = ipp.Client(profile_dir=profile)
        pid = rc[0].apply_sync(rc.plugin("sysinfo").getpid)
        r = rc[0].apply_async(rc.plugin("arith").wait_here, 30)
        time.sleep(0.5)
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(ipp.EngineError) as e:
            r.get(timeout=20)
        assert "engine 0 died while running task 'arith.wait_here'" in str(e.value)
        assert "SIGKILL" in str(e.value)
    finally:
        ippctl(profile, "cluster", "stop", check=False)


def test_shutdown_stops_the_cluster(tmp_path):
    from conftest import ippctl
    profile = str(tmp_path / "profile")
    ippctl(profile, "cluster", "start", "-n", "1")
    try:
        rc = ipp.Client(profile_dir=profile)
        assert rc.ids == [0]
        rc.shutdown()
        deadline = time.monotonic() + 15
        while ippctl(profile, "ids", check=False).returncode == 0:
            assert time.monotonic() < deadline, "the controller still answers"
            time.sleep(0.2)
        assert ippctl(profile, "ids", check=False).returncode == 3  # no controller
    finally:
        ippctl(profile, "cluster", "stop", check=False)
