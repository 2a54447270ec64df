"""ipp's errors as Python exceptions, named as ipyparallel names them where the idea is the same.

Every exception ipp raises derives from IppError. A task that failed on an engine is a
RemoteError carrying the remote type (`ename`) and message (`evalue`); several failures of one
call are a CompositeError holding each.
"""

import builtins


class IppError(Exception):
    """Base of every error ipp raises; `code` is ipp's error code name."""

    code = "unknown"


def _error(name, code, bases=(), doc=None):
    cls = type(name, (IppError, *bases), {"code": code, "__doc__": doc, "__module__": __name__})
    return cls


# One class per ipp error code; where Python has a builtin for the idea, it is a base too.
ProtocolError = _error("ProtocolError", "protocol")
PluginLoadError = _error("PluginLoadError", "plugin_load")
TaskNotFound = _error("TaskNotFound", "task_not_found", (LookupError,))
AmbiguousTask = _error("AmbiguousTask", "ambiguous_task", (LookupError,))
ArgumentError = _error("ArgumentError", "argument", (builtins.TypeError,))
EngineError = _error("EngineError", "engine", (),
                     "An engine died or became unreachable while it held a task.")
TimeoutError = _error("TimeoutError", "timeout", (builtins.TimeoutError,))
UsageError = _error("UsageError", "usage", (builtins.ValueError,))
ConnectionError = _error("ConnectionError", "connection", (builtins.ConnectionError,))
NameError = _error("NameError", "name_error", (builtins.NameError,))
TaskAborted = _error("TaskAborted", "aborted")
TaskCancelled = _error("TaskCancelled", "cancelled")
SyntaxError = _error("SyntaxError", "syntax", (builtins.ValueError,))
ImpossibleDependency = _error("ImpossibleDependency", "impossible_dependency")
InvalidDependency = _error("InvalidDependency", "invalid_dependency")
PermissionDenied = _error("PermissionDenied", "permission", (builtins.PermissionError,))


class RemoteError(IppError):
    """A task failed on an engine: `ename` is the remote exception's type, `evalue` its
    message, `engine_id` the engine (-1: none), `task` the qualified task name."""

    code = "remote"

    def __init__(self, message, ename="", evalue="", task="", plugin="", engine_id=-1,
                 element=None, line=0, column=0, kind=None):
        super().__init__(message)
        self.ename = ename
        self.evalue = evalue
        self.task = task
        self.plugin = plugin
        self.engine_id = engine_id
        self.element = element
        self.line = line
        self.column = column
        self.kind = kind  # the class ipp itself would raise for this code (EngineError, ...)

    @property
    def engine_info(self):
        return {"engine_id": self.engine_id}

    def render_traceback(self):
        """What IPython shows for it: the remote type and message, where it ran."""
        return [str(self)]


class CompositeError(IppError):
    """Several failures of one call: `errors` holds each as a RemoteError; `elist` as
    ipyparallel's (ename, evalue, traceback, engine_info) tuples."""

    code = "composite"

    def __init__(self, message, errors=()):
        super().__init__(message)
        self.errors = list(errors)

    @property
    def elist(self):
        return [(e.ename, e.evalue, None, e.engine_info) for e in self.errors]

    def raise_exception(self, index=0):
        raise self.errors[index]


_BY_CODE = {cls.code: cls for cls in (
    ProtocolError, PluginLoadError, TaskNotFound, AmbiguousTask, ArgumentError, EngineError,
    TimeoutError, UsageError, ConnectionError, NameError, TaskAborted, TaskCancelled,
    SyntaxError, ImpossibleDependency, InvalidDependency, PermissionDenied)}

_CODE_NAMES = ["unknown", "protocol", "plugin_load", "task_not_found", "ambiguous_task",
               "argument", "remote", "engine", "timeout", "composite", "usage", "connection",
               "name_error", "aborted", "cancelled", "syntax", "impossible_dependency",
               "invalid_dependency", "permission"]


def _code_name(code):
    return _CODE_NAMES[code] if 0 <= code < len(_CODE_NAMES) else "unknown"


def error_from_code(code, message):
    """The exception for an error ipp raised locally (not a task's failure)."""
    return _BY_CODE.get(_code_name(code), IppError)(message)


# Failures of a task that ipp itself reports (an engine that died, a time limit) are raised as
# their own class, which also derives from RemoteError so that `except RemoteError` sees them.
_REMOTE_KINDS = {}


def _remote_kind(code_name):
    base = _BY_CODE.get(code_name)
    if base is None:
        return RemoteError
    cls = _REMOTE_KINDS.get(code_name)
    if cls is None:
        cls = type("Remote" + base.__name__, (RemoteError, base), {"code": code_name})
        _REMOTE_KINDS[code_name] = cls
    return cls


def error_from_record(code, ename, evalue, task, plugin, engine_id, element, line, column,
                      described):
    """The exception for one task's failure (an ipp ErrorRecord)."""
    name = _code_name(code)
    cls = _remote_kind(name)
    e = cls(described, ename=ename, evalue=evalue, task=task, plugin=plugin,
            engine_id=engine_id, element=element, line=line, column=column,
            kind=_BY_CODE.get(name))
    return e
