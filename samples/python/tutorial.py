# The IPython.parallel tutorial's cells, against an ipp cluster, one cell per block.
# Run it in IPython (`ipython3 -i samples/python/tutorial.py`, or paste the cells) or as a
# script (`python3 samples/python/tutorial.py`), with a cluster started and arith pushed:
#
#     ippctl cluster start -n 4
#     ippctl push build/plugins/arith.so
#
# The tasks are the compiled ones of samples/arith (mul, wait_here); plain Python functions
# run through the python plugin, described in docs/python.md.
import time

import ipp

# %% Connect, and see the engines.
rc = ipp.Client()
print(rc.ids)

# %% mul(5, 6) remotely, on one engine and on all of them.
mul = rc.plugin("arith").mul
wait_here = rc.plugin("arith").wait_here
print(rc[0].apply_sync(mul, 5, 6))
dview = rc[:]
print(dview.apply_sync(mul, 5, 6))

# %% A parallel map.
print(dview.map_sync(mul, range(1, 10), range(2, 11)))

# %% Each engine's namespace: a pid per engine.
dview.execute("import sysinfo")
dview.execute("a = sysinfo.getpid()", block=True)
print(dview["a"])

# %% Asynchronous: four engines wait 2 s each, at the same time.
t = time.monotonic()
ar = dview.apply_async(wait_here, 2)
print(ar.get(), f"in {time.monotonic() - t:.1f} s")
