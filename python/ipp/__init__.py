"""ipp from Python: a client for ipp clusters with ipyparallel's API.

    import ipp
    rc = ipp.Client()                       # the default profile's cluster
    rc.ids                                  # [0, 1, 2, 3]
    arith = rc.plugin("arith")              # compiled tasks, by plugin
    rc[0].apply_sync(arith.mul, 5, 6)       # 30
    dview = rc[:]
    dview.map_sync(arith.mul, range(1, 10), range(2, 11))   # [2, 6, 12, ..., 90]
    dview.execute("import sysinfo; a = sysinfo.getpid()")
    dview["a"]                              # one pid per engine

Values cross as ipp values: None, bool, int, float, str, bytes, list (and tuple), dict with
str keys, range (sent as three numbers) and numpy arrays (shared, not copied, on the way out;
read-only arrays over the received memory on the way back).
"""

import os
import sys
import time

from . import _core
from ._errors import (AmbiguousTask, ArgumentError, CompositeError, ConnectionError, EngineError,
                      ImpossibleDependency, InvalidDependency, IppError, NameError,
                      PermissionDenied, PluginLoadError, ProtocolError, RemoteError,
                      SyntaxError, TaskAborted, TaskCancelled, TaskNotFound, TimeoutError,
                      UsageError)

__all__ = [
    "Client", "DirectView", "LoadBalancedView", "AsyncResult", "Task", "Plugin", "ref", "Ref",
    "IppError", "RemoteError", "CompositeError", "EngineError", "TimeoutError", "UsageError",
    "ConnectionError", "ArgumentError", "NameError", "PluginLoadError", "ProtocolError",
    "TaskAborted", "TaskCancelled", "TaskNotFound", "AmbiguousTask", "SyntaxError",
    "ImpossibleDependency", "InvalidDependency", "PermissionDenied",
]

Ref = _core.Ref


def ref(name):
    """An argument naming a value in the namespace of the engine that runs the task: each
    engine passes its own, and nothing moves through the client."""
    return _core.Ref(name)


class Task:
    """A compiled task by name (`arith.mul`), as `rc.plugin("arith").mul` gives it. Views run
    it: `view.apply(task, 5, 6)`."""

    def __init__(self, name):
        self.name = name

    def __repr__(self):
        return f"<ipp task {self.name}>"

    def __call__(self, *args, **kwargs):
        raise TypeError(f"{self.name} is a task of the cluster: run it through a view, as in "
                        f"rc[:].apply({self.name.rsplit('.', 1)[-1]}, ...)")

    def __eq__(self, other):
        return isinstance(other, Task) and other.name == self.name

    def __hash__(self):
        return hash(self.name)


class Plugin:
    """The tasks of one plugin as attributes: `rc.plugin("arith").mul`."""

    def __init__(self, name):
        self._name = name

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return Task(f"{self._name}.{attr}")

    def __repr__(self):
        return f"<ipp plugin {self._name}>"


_PICKLE_KEY = "__ipp_pickle__"


def _is_python_function(f):
    return callable(f) and not isinstance(f, (Task, str))


def _installed(module):
    """Whether `module` is one the engines can import too: of the standard library or of an
    installed package (not the user's own script or module)."""
    import sysconfig
    path = getattr(module, "__file__", None)
    if not path:
        return True  # built in
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots.update(p for p in sys.path if "-packages" in p)
    path = os.path.realpath(path)
    return any(path.startswith(os.path.realpath(r) + os.sep) for r in roots if r)


def _pickle_function(f):
    """A Python function for the engines, with cloudpickle: functions of the user's own code
    (IPython, a script, a module beside it) travel by value, whole; those of installed
    packages by reference (the engines import them). Without cloudpickle, pickle sends a
    reference."""
    try:
        import cloudpickle
    except ImportError:
        import pickle
        return pickle.dumps(f)
    module = sys.modules.get(getattr(f, "__module__", None) or "")
    if module is not None and module.__name__ != "__main__" and not _installed(module):
        cloudpickle.register_pickle_by_value(module)
    return cloudpickle.dumps(f)


def _decode(value):
    """A value from the engines, with pickled objects (the map {"__ipp_pickle__": bytes})
    unpickled: at the top, and in a top-level list (one value per engine)."""
    if isinstance(value, dict) and len(value) == 1 and _PICKLE_KEY in value:
        import pickle
        return pickle.loads(value[_PICKLE_KEY])
    if isinstance(value, list):
        return [_decode(v) if isinstance(v, dict) else v for v in value]
    return value


def _execute_statement(code):
    """Python `code` as the ipp statement that runs it in order with the engine's other
    namespace operations: python.execute("...")."""
    out = []
    for ch in code:
        if ch == "\\":
            out.append("\\\\")
        elif ch == '"':
            out.append('\\"')
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append(ch)
    return 'import python\npython.execute("' + "".join(out) + '")'


class _Joined:
    """Several results read as one: their values concatenated in order (the blocks of a map of
    a Python function)."""

    def __init__(self, parts):
        self._parts = parts

    def get(self, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        out = []
        for p in self._parts:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            value = p.get(left)
            out.extend(value)
        return out

    def wait(self, timeout):
        deadline = None if timeout is None else time.monotonic() + timeout
        for p in self._parts:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not p.wait(left):
                return False
        return True

    def ready(self):
        return all(p.ready() for p in self._parts)

    def successful(self):
        return all(p.successful() for p in self._parts)

    @property
    def msg_ids(self):
        return [i for p in self._parts for i in p.msg_ids]

    def progress(self):
        done = total = 0
        for p in self._parts:
            d, t = p.progress()
            done, total = done + d, total + t
        return done, total

    def metadata(self):
        return [m for p in self._parts for m in p.metadata()]

    def abort(self):
        for p in self._parts:
            p.abort()

    def cancel(self):
        for p in self._parts:
            p.cancel()


def _blocks(n, parts):
    """[begin, end) of `parts` contiguous blocks of n items, the first n % parts one longer."""
    base, extra = divmod(n, parts)
    out, begin = [], 0
    for i in range(parts):
        end = begin + base + (1 if i < extra else 0)
        out.append((begin, end))
        begin = end
    return out


def _is_scalar(s):
    return isinstance(s, (str, bytes, dict)) or not hasattr(s, "__iter__") or (
        hasattr(s, "ndim") and s.ndim == 0)


def _columns(sequences):
    """The sequences of a map, as columns of equal length (arrays stay arrays); a single value
    is repeated for every element, as numpy broadcasts a scalar."""
    cols = [None if _is_scalar(s) else s if hasattr(s, "__array_interface__") else list(s)
            for s in sequences]
    lengths = [len(c) for c in cols if c is not None]
    if not lengths:
        raise TypeError("map: no argument is a sequence to map over")
    n = min(lengths)
    return [[s] * n if c is None else c[:n] for s, c in zip(sequences, cols)], n


def _task_name(f):
    if isinstance(f, Task):
        return f.name
    if isinstance(f, str):
        return f
    raise TypeError(f"a task is a Task or a task name, not a {type(f).__name__}")


def _no_kwargs(kwargs):
    if kwargs:
        raise TypeError("ipp tasks take positional arguments only, not "
                        + ", ".join(sorted(kwargs)))


class AsyncResult:
    """The outcome of a call that did not wait, as ipyparallel's AsyncResult.

    get(timeout) waits and returns the value (or raises the remote error); ready(),
    wait(timeout), successful(), msg_ids, metadata, progress, wait_interactive(), abort().
    Waiting releases the GIL, and Ctrl-C interrupts it."""

    def __init__(self, core, kind="apply", single=True, as_list=False, decode=True):
        self._core = core
        self._kind = kind
        self._single = single
        self._as_list = as_list
        self._decode = decode
        self._started = time.monotonic()

    def get(self, timeout=None):
        """The value, once ready; raises TimeoutError when `timeout` seconds pass first."""
        value = self._core.get(timeout)
        if self._as_list and hasattr(value, "tolist"):
            value = value.tolist()
        return _decode(value) if self._decode else value

    result = get

    def ready(self):
        return self._core.ready()

    def wait(self, timeout=None):
        """Waits up to `timeout` seconds (forever: None); returns ready()."""
        return self._core.wait(timeout)

    def successful(self):
        return self._core.successful()

    @property
    def msg_ids(self):
        return self._core.msg_ids

    @property
    def msg_id(self):
        ids = self._core.msg_ids
        return ids[0] if len(ids) == 1 else ids

    @property
    def progress(self):
        """How many of its tasks have finished."""
        return self._core.progress()[0]

    def __len__(self):
        return self._core.progress()[1]

    @property
    def elapsed(self):
        """Seconds since it was submitted."""
        return time.monotonic() - self._started

    @property
    def metadata(self):
        """Per task: msg_id, engine_id, submitted, started, completed, received (datetimes in
        the controller's clock) and elapsed seconds; one dict for a single task."""
        m = self._core.metadata()
        return m[0] if self._single and len(m) == 1 else m

    @property
    def stdout(self):
        """What its tasks printed to stdout on the engines: a str for a single task, else one
        per task (a multi-engine call: per engine)."""
        return self._printed("stdout")

    @property
    def stderr(self):
        return self._printed("stderr")

    def _printed(self, stream):
        m = self._core.metadata()
        if self._single and len(m) == 1:
            return m[0][stream]
        return [t[stream] for t in m]

    def display_outputs(self):
        """Prints what each task printed, under a line naming its engine."""
        for t in self._core.metadata():
            for stream, out in (("stdout", sys.stdout), ("stderr", sys.stderr)):
                if t[stream]:
                    print(f"[{stream}:{t['engine_id']}]", file=out)
                    print(t[stream], end="" if t[stream].endswith("\n") else "\n", file=out)

    def abort(self):
        """Removes its tasks that have not started (they fail with TaskAborted)."""
        self._core.abort()

    def cancel(self):
        self._core.cancel()

    def wait_interactive(self, interval=0.1, timeout=-1, widget=None):
        """Waits, drawing progress: a tqdm bar when tqdm is installed, else a line on stdout."""
        deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
        total = len(self)
        bar = None
        try:
            from tqdm.auto import tqdm
            bar = tqdm(total=total, unit="tasks", leave=True)
        except ImportError:
            pass
        done = 0
        try:
            while True:
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                step = interval if left is None else min(interval, left)
                finished = self.wait(step)
                now = self.progress
                if bar is not None:
                    bar.update(now - done)
                else:
                    print(f"\r{now:4}/{total} tasks done after {self.elapsed:5.1f} s", end="",
                          file=sys.stdout, flush=True)
                done = now
                if finished or (deadline is not None and time.monotonic() >= deadline):
                    break
        finally:
            if bar is not None:
                bar.close()
            else:
                print(file=sys.stdout)

    def __repr__(self):
        state = "finished" if self.ready() else "pending"
        return f"<AsyncResult({self._kind}): {state}>"


class _View:
    """What both kinds of view share: `block` (False: calls return an AsyncResult)."""

    def __init__(self, client, block=False):
        self.client = client
        self.block = block

    def _done(self, result, block):
        if self.block if block is None else block:
            return result.get()
        return result

    def apply(self, f, *args, **kwargs):
        """Calls `f(*args)` on this view's engines; waits when `block` is set."""
        _no_kwargs(kwargs)
        return self._done(self.apply_async(f, *args), None)

    def apply_sync(self, f, *args, **kwargs):
        _no_kwargs(kwargs)
        return self.apply_async(f, *args).get()

    def map(self, f, *sequences, block=None, **kwargs):
        """`f` over the elements of the sequences (in parallel); a list, or a numpy array
        when a sequence was one."""
        return self._done(self.map_async(f, *sequences, **kwargs), block)

    def map_sync(self, f, *sequences, **kwargs):
        return self.map_async(f, *sequences, **kwargs).get()


def _any_array(sequences):
    return any(hasattr(s, "__array_interface__") for s in sequences)


class DirectView(_View):
    """Runs tasks on named engines (`rc[0]`, `rc[:]`, `rc[::2]`), each of which keeps a
    namespace: `view["a"] = 1`, `view["a"]`, push, pull, scatter, gather, execute."""

    def __init__(self, client, core, single, block=False):
        super().__init__(client, block)
        self._view = core
        self._single = single

    @property
    def targets(self):
        t = self._view.targets
        return t[0] if self._single else list(t)

    def __repr__(self):
        return f"<DirectView {self.targets}>"

    def __len__(self):
        return len(self._view.targets)

    def _result(self, core, kind, as_list=False):
        return AsyncResult(core, kind, single=self._single, as_list=as_list)

    def apply_async(self, f, *args, **kwargs):
        _no_kwargs(kwargs)
        if _is_python_function(f):
            return self._result(self._view.python_async(_pickle_function(f), args, False),
                                "apply")
        return self._result(self._view.apply_async(_task_name(f), args), "apply")

    def map_async(self, f, *sequences, **kwargs):
        _no_kwargs(kwargs)
        if not sequences:
            raise TypeError("map needs at least one sequence")
        if _is_python_function(f):
            # A contiguous block of rows per engine, as for compiled tasks.
            data = _pickle_function(f)
            cols, n = _columns(sequences)
            targets = self._view.targets
            parts = []
            for t, (b, e) in zip(targets, _blocks(n, len(targets))):
                if e > b:
                    view = self.client._core.view([t], True)
                    parts.append(view.python_async(data, [c[b:e] for c in cols], True))
            return AsyncResult(_Joined(parts), "map", single=False)
        return AsyncResult(self._view.map_async(_task_name(f), sequences), "map",
                           as_list=not _any_array(sequences))

    def execute(self, code, block=None, language="python"):
        """Runs `code` in each engine's namespace, in order with the other namespace
        operations: Python statements (`language="python"`, in the interpreter the engines
        embed), or ipp's own statements (`language="ipp"`, docs/execute.md). Names bound
        either way are the same namespace: `view["a"]` reads them."""
        if language == "python":
            code = _execute_statement(code)
        elif language != "ipp":
            raise ValueError(f"language is 'python' or 'ipp', not {language!r}")
        return self._done(self._result(self._view.execute(code), "execute"), block)

    def push(self, ns, block=None):
        """Binds each name of the dict `ns` on every engine of the view."""
        if not isinstance(ns, dict):
            raise TypeError(f"push takes a dict of names to values, not a {type(ns).__name__}")
        return self._done(self._result(self._view.push_async(ns), "push"), block)

    def pull(self, names, block=None):
        """The value of `names` (a name, or a list of them) on each engine."""
        if isinstance(names, str):
            r = self._view.pull_async(names)
        else:
            r = self._view.pull_async(list(names))
        return self._done(self._result(r, "pull"), block)

    def __getitem__(self, name):
        if not isinstance(name, str):
            raise TypeError("a view's namespace is indexed by name (str)")
        return self.pull(name, block=True)

    def __setitem__(self, name, value):
        self.push({name: value}, block=True)

    def update(self, ns):
        self.push(ns, block=True)

    def get(self, name):
        return self[name]

    def scatter(self, name, seq, block=None):
        """Splits `seq` into contiguous blocks, one per engine, bound to `name`."""
        return self._done(self._result(self._view.scatter_async(name, seq), "scatter"), block)

    def gather(self, name, block=None):
        """Joins the engines' blocks of `name` in target order."""
        return self._done(AsyncResult(self._view.gather_async(name), "gather"), block)

    def clear(self, block=None):
        """Empties the engines' namespaces."""
        return self._done(self._result(self._view.clear_async(), "clear"), block)


class LoadBalancedView(_View):
    """Runs each task wherever a free engine is; set_flags() sets per-task options."""

    def __init__(self, client, core, block=False):
        super().__init__(client, block)
        self._base = core
        self._view = core
        self._flags = {}

    def set_flags(self, timeout=None, retries=0, after=None, follow=None, targets=None,
                  priority=0, time_limit=None, **kwargs):
        """Options of the tasks this view sends from now on: `timeout` (seconds waiting in the
        scheduler), `retries`, `after` / `follow` (AsyncResults or msg_ids), `targets` (engines
        allowed), `priority`, `time_limit` (seconds of running)."""
        if "block" in kwargs:
            self.block = kwargs.pop("block")
        if kwargs:
            raise TypeError("unknown flags: " + ", ".join(sorted(kwargs)))
        self._view = self._base.with_flags(timeout, retries, _ids(after), True, _ids(follow),
                                           True, list(targets or []), priority, time_limit)

    def apply_async(self, f, *args, **kwargs):
        _no_kwargs(kwargs)
        if _is_python_function(f):
            return AsyncResult(self._view.python_async(_pickle_function(f), args, False), "apply")
        return AsyncResult(self._view.apply_async(_task_name(f), args), "apply")

    def map_async(self, f, *sequences, chunksize=0, ordered=True, **kwargs):
        _no_kwargs(kwargs)
        if not sequences:
            raise TypeError("map needs at least one sequence")
        if _is_python_function(f):
            data = _pickle_function(f)
            cols, n = _columns(sequences)
            if chunksize <= 0:  # about four chunks per engine
                chunksize = max(1, -(-n // (4 * max(1, len(self.client.ids)))))
            parts = [self._view.python_async(data, [c[b:b + chunksize] for c in cols], True)
                     for b in range(0, n, chunksize)]
            return AsyncResult(_Joined(parts), "map", single=False)
        return AsyncResult(self._view.map_async(_task_name(f), sequences, chunksize), "map",
                           as_list=not _any_array(sequences))

    def __repr__(self):
        return "<LoadBalancedView>"


def _ids(deps):
    if deps is None:
        return []
    if isinstance(deps, (AsyncResult, str)):
        deps = [deps]
    out = []
    for d in deps:
        out.extend(d.msg_ids if isinstance(d, AsyncResult) else [d])
    return out


class _HubResult:
    """A recorded task's result from the hub (any client's, also one that has exited)."""

    def __init__(self, core, msg_id):
        self._core = core
        self.msg_id = msg_id

    def get(self, timeout=None):
        return self._core.get_result(self.msg_id, timeout)


_DB_OPS = {"$eq": "==", "$ne": "!=", "$lt": "<", "$lte": "<=", "$gt": ">", "$gte": ">=",
           "$in": "in", "$glob": "glob"}


def _conditions(query):
    if query is None:
        return []
    if isinstance(query, str):
        return [query]
    if isinstance(query, dict):
        out = []
        for field, cond in query.items():
            if isinstance(cond, dict):
                for op, value in cond.items():
                    if op not in _DB_OPS:
                        raise ValueError(f"unknown query operator {op!r}: one of "
                                         + ", ".join(_DB_OPS))
                    out.append((field, _DB_OPS[op], value))
            else:
                out.append((field, "==", cond))
        return out
    return list(query)


class Client:
    """A connection to an ipp cluster, as ipyparallel's Client.

    Client() connects to the default profile's controller; Client(profile="name") to
    ~/.ipp/profile_name's; Client(url_file="ipp-client.json") (or profile_dir=...) to one
    started elsewhere. `timeout` (seconds) bounds how long a query waits for the controller."""

    def __init__(self, url_file=None, profile=None, profile_dir=None, timeout=10.0,
                 shared_memory=True, **kwargs):
        if kwargs:
            raise TypeError("unknown arguments: " + ", ".join(sorted(kwargs)))
        if profile is not None and profile_dir is None:
            import os
            profile_dir = os.path.join(os.path.expanduser("~"), ".ipp", f"profile_{profile}")
        self._core = _core.Client(profile_dir, url_file, float(timeout), bool(shared_memory))
        self.block = False

    @property
    def ids(self):
        """The ids of the registered engines."""
        return self._core.ids()

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, key):
        if isinstance(key, int):
            if key < 0:  # as a list's index: -1 is the last engine
                ids = self.ids
                if -key > len(ids):
                    raise IndexError(f"no engine at {key} (engines: {ids})")
                key = ids[key]
            return DirectView(self, self._core.view([key], True), True, self.block)
        if isinstance(key, slice):
            targets = self.ids[key]
        else:
            targets = list(key)
        if not targets:
            raise IndexError(f"no engines in {key!r} (engines: {self.ids})")
        return DirectView(self, self._core.view(targets, False), False, self.block)

    def direct_view(self, targets="all"):
        """A view on `targets` ("all": every engine registered now)."""
        return self[:] if targets == "all" or targets is None else self[targets]

    def load_balanced_view(self, targets=None):
        view = LoadBalancedView(self, self._core.load_balanced_view(), self.block)
        if targets is not None:
            view.set_flags(targets=list(targets) if not isinstance(targets, int) else [targets])
        return view

    def plugin(self, name):
        """The compiled tasks of plugin `name`, as attributes: `rc.plugin("arith").mul`."""
        return Plugin(name)

    def push_plugin(self, path):
        """Sends a plugin (.so) to every engine, and engines that join later; returns each
        engine's outcome. Raises PluginLoadError naming the engines that failed."""
        return self._core.push_plugin(str(path))

    def unload_plugin(self, name):
        return self._core.unload_plugin(name)

    def plugins(self):
        return self._core.plugins()

    def queue_status(self, targets=None, verbose=False):
        """Per engine: tasks queued and completed."""
        status = self._core.queue_status()
        if targets is not None and isinstance(status, dict):
            wanted = {str(t) for t in ([targets] if isinstance(targets, int) else targets)}
            status = {k: v for k, v in status.items() if k in wanted}
        return status

    def engines(self):
        return self._core.engines()

    def wait(self, jobs=None, timeout=-1):
        """Waits for `jobs` (AsyncResults), or for everything this client sent; False when
        `timeout` seconds passed first."""
        t = None if timeout is None or timeout < 0 else timeout
        if jobs is None:
            return self._core.wait(t)
        jobs = [jobs] if isinstance(jobs, AsyncResult) else jobs
        deadline = None if t is None else time.monotonic() + t
        for j in jobs:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not j.wait(left):
                return False
        return True

    def abort(self, jobs):
        return self._core.abort(_ids(jobs))

    def get_result(self, msg_id):
        """The recorded result of `msg_id`, from any client: `.get(timeout)`."""
        return _HubResult(self._core, msg_id)

    def result_status(self, msg_ids):
        return self._core.result_status(_ids(msg_ids))

    def resubmit(self, msg_ids):
        """Runs recorded tasks again with their stored arguments."""
        return AsyncResult(self._core.resubmit(_ids(msg_ids)), "resubmit", single=False)

    def db_query(self, query=None, keys=None, limit=0):
        """Records of the hub's task database: `query` as ipyparallel's ({"task": {"$glob":
        "arith.*"}, "completed": {"$gte": t}}) or as ipp's text ("task glob arith.*")."""
        return self._core.db_query(_conditions(query), list(keys or []), limit)

    def hub_history(self, limit=0):
        return self._core.hub_history(limit)

    def purge_results(self, jobs=None, targets=None):
        if jobs == "all":
            return self._core.purge_all_results()
        return self._core.purge_results(_ids(jobs))

    def shutdown(self, targets="all", hub=True, block=None):
        """Stops the controller and its engines."""
        self._core.shutdown()

    def close(self):
        self._core = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
