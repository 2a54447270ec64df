"""Python functions and statements on the engines (the python plugin), mixed with compiled
tasks, against a real 4-engine cluster (conftest.py)."""

import fractions
import os
import time

import numpy as np
import pytest

import ipp


def mul(a, b):
    return a * b


def test_functions_run_on_one_engine_and_on_all(rc):
    assert rc[0].apply_sync(mul, 5, 6) == 30
    assert rc[:].apply_sync(mul, 5, 6) == [30, 30, 30, 30]
    factor = 3
    assert rc[1].apply_sync(lambda x: x * factor, 14) == 42  # a closure, by value
    assert rc[2].apply_sync(mul, "ab", 2) == "abab"
    assert rc.load_balanced_view().apply_sync(mul, 2.5, 2) == 5.0


def test_results_that_are_no_ipp_value_come_back_pickled(rc):
    assert rc[0].apply_sync(lambda: fractions.Fraction(1, 3)) == fractions.Fraction(1, 3)
    assert rc[0].apply_sync(lambda: (1, {2: "x"})) == (1, {2: "x"})
    assert rc[0].apply_sync(lambda f: f * 3, fractions.Fraction(1, 3)) == 1
    s = rc[0].apply_sync(lambda: {1, 2})
    assert s == {1, 2}


def test_numpy_arrays_reach_python_functions_and_come_back(rc):
    a = np.arange(12.0).reshape(3, 4)
    total = rc[1].apply_sync(lambda x: float(x.sum()), a)
    assert total == 66.0
    back = rc[1].apply_sync(lambda x: x * 2, a)
    assert isinstance(back, np.ndarray) and (back == a * 2).all()


def test_map_over_engines_and_load_balanced(rc):
    dview = rc[:]
    assert dview.map_sync(mul, range(1, 10), range(2, 11)) == [2, 6, 12, 20, 30, 42, 56, 72, 90]
    assert dview.map_sync(lambda x: x + 1, [1, 2, 3]) == [2, 3, 4]  # fewer rows than engines
    assert dview.map_sync(mul, np.arange(6), np.arange(6)) == [0, 1, 4, 9, 16, 25]
    assert dview.map_sync(mul, range(1, 6), 2) == [2, 4, 6, 8, 10]  # a single value broadcast
    assert dview.map_sync(mul, "ab", [1, 2]) == ["ab", "abab"]  # a str is one value
    lb = rc.load_balanced_view()
    assert lb.map_sync(lambda x: x * x, range(50)) == [x * x for x in range(50)]
    r = lb.map_async(lambda x: -x, range(20), chunksize=3)
    assert len(r) == 7
    assert r.get(timeout=30) == [-x for x in range(20)]
    assert r.progress == 7


def test_statements_share_one_namespace_with_push_pull_and_compiled_tasks(rc, arith):
    dview = rc[:]
    dview.execute("import os", block=True)
    dview.execute("a = os.getpid()", block=True)
    pids = dview["a"]
    assert len(set(pids)) == 4
    assert pids == dview.apply_sync(ipp.Task("sysinfo.getpid"))
    # Pushed values are Python's names; what Python binds, pull and compiled tasks see.
    dview.push({"n": 6}, block=True)
    dview.execute("m = n * 7", block=True)
    assert dview["m"] == [42] * 4
    assert dview.apply_sync(arith.mul, ipp.ref("m"), 2) == [84] * 4
    # Functions and modules stay in the interpreter, and later statements use them.
    dview.execute("def sq(x):\n    return x * x\nk = sq(m)", block=True)
    assert dview["k"] == [1764] * 4
    # Objects that are no ipp value travel pickled both ways.
    dview.push({"fr": fractions.Fraction(1, 3)}, block=True)
    dview.execute("g = fr * 3", block=True)
    assert dview["g"] == [1, 1, 1, 1]
    assert rc[0]["fr"] == fractions.Fraction(1, 3)
    # A value changed in place is published again.
    rc[0]["xs"] = [1]
    rc[0].execute("xs.append(2)", block=True)
    assert rc[0]["xs"] == [1, 2]
    # Statements run in order with the other namespace operations.
    view = rc[3]
    for i in range(20):
        view.execute(f"step = {i}")
    assert view["step"] == 19
    # ipp's own statement language is still there.
    rc[0].execute("import sysinfo; z = sysinfo.getpid()", language="ipp", block=True)
    assert rc[0]["z"] == pids[0]


def test_python_errors_come_back_with_their_own_type(rc):
    with pytest.raises(ipp.RemoteError) as e:
        rc[0].apply_sync(lambda: 1 / 0)
    assert e.value.ename == "ZeroDivisionError"
    assert "division by zero" in e.value.evalue
    assert e.value.engine_id == 0
    with pytest.raises(ipp.RemoteError) as e:
        rc[1].execute("import not_a_module_anywhere", block=True)
    assert e.value.ename == "ModuleNotFoundError"
    assert "not_a_module_anywhere" in e.value.evalue
    with pytest.raises(ipp.RemoteError) as e:
        rc[1].execute("x = (", block=True)
    assert e.value.ename == "SyntaxError"
    with pytest.raises(ipp.RemoteError) as e:
        rc[1].execute("y = never_bound + 1", block=True)
    assert e.value.ename == "NameError"
    with pytest.raises(ipp.CompositeError) as c:
        rc[:].apply_sync(lambda: [].pop())
    assert {err.ename for err in c.value.errors} == {"IndexError"}
    # And the engines serve on.
    assert rc[:].apply_sync(mul, 1, 2) == [2, 2, 2, 2]


def test_python_and_compiled_tasks_run_side_by_side(rc, arith):
    def slow(seconds):
        import time as t
        t.sleep(seconds)
        return seconds

    lb = rc.load_balanced_view()
    start = time.monotonic()
    py = [lb.apply_async(slow, 1) for _ in range(4)]
    compiled = [lb.apply_async(arith.wait_here, 1) for _ in range(4)]
    assert [r.get(timeout=30) for r in py] == [1, 1, 1, 1]
    assert all(isinstance(r.get(timeout=30), int) for r in compiled)
    # Eight one-second tasks on four engines: about two seconds, not eight.
    assert time.monotonic() - start < 5


def test_what_a_task_prints_comes_back_with_it_and_not_in_the_log(rc, cluster):
    def chatty(x):
        import sys
        print("out", x)
        print("err", x, file=sys.stderr)
        return x

    r = rc[:].apply_async(chatty, 7)
    assert r.get() == [7, 7, 7, 7]
    assert r.stdout == ["out 7\n"] * 4
    assert r.stderr == ["err 7\n"] * 4
    one = rc[2].apply_async(chatty, 8)
    one.get()
    assert one.stdout == "out 8\n" and one.metadata["stdout"] == "out 8\n"
    lb = rc.load_balanced_view().map_async(chatty, range(12), chunksize=4)
    lb.get()
    assert "".join(lb.stdout) == "".join(f"out {i}\n" for i in range(12))
    ex = rc[1].execute("print('executed')")
    ex.get()
    assert ex.stdout == "executed\n"
    import glob
    for log in glob.glob(os.path.join(cluster, "logs", "engine-*.log")):
        text = open(log, errors="replace").read()
        assert "out 7" not in text and "executed" not in text, log
