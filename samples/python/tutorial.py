# The IPython.parallel tutorial's cells, against an ipp cluster, one cell per block. Run it in
# IPython (`ipython3 -i samples/python/tutorial.py`, or paste the cells) or as a script
# (`python3 samples/python/tutorial.py`), with a cluster started:
#
#     ippctl cluster start -n 4
#
# Plain Python functions run in the interpreter each engine embeds (the python plugin); the
# compiled tasks of a pushed plugin run beside them (`rc.plugin("arith").mul`).
import ipp

# %% Connect, and see the engines.
rc = ipp.Client()
print(rc.ids)


# %% A function, run remotely on one engine, then on all of them.
def mul(a, b):
    return a * b


dview = rc[:]
print(rc[0].apply_sync(mul, 5, 6))
print(dview.apply_sync(mul, 5, 6))

# %% A parallel map.
print(dview.map_sync(mul, range(1, 10), range(2, 11)))

# %% Each engine's namespace: a pid per engine.
dview.execute("import os")
dview.execute("a = os.getpid()")
print(dview["a"])


# %% Asynchronous: four engines wait 2 s each, at the same time.
def wait_here(seconds):
    import os
    import time
    time.sleep(seconds)
    return os.getpid()


import time  # noqa: E402

t = time.monotonic()
ar = dview.apply_async(wait_here, 2)
print(ar.get(), f"in {time.monotonic() - t:.1f} s")
