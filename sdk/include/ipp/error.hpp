#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace ipp {

/// What went wrong, as a stable number that survives the wire and the process boundary.
enum class ErrorCode : std::int32_t {
  unknown = 0,
  protocol = 1,                ///< a malformed, truncated or unsigned message or buffer
  plugin_load = 2,             ///< a file that cannot be loaded as an ipp plugin
  task_not_found = 3,          ///< no task of that name is loaded
  ambiguous_task = 4,          ///< a bare task name that several plugins define
  argument = 5,                ///< wrong argument count, type, or a value that does not fit
  remote = 6,                  ///< a task threw on an engine
  engine = 7,                  ///< an engine died or is unreachable
  timeout = 8,                 ///< a wait ran out of time
  composite = 9,               ///< several of the above at once
  usage = 10,                  ///< an API or command misused by the caller
  connection = 11,             ///< no controller, or it stopped answering
  name_error = 12,             ///< a name missing from an engine's namespace
  aborted = 13,                ///< a task removed from a queue before it ran
  cancelled = 14,              ///< a task cancelled while it ran
  syntax = 15,                 ///< malformed literal or statement text
  impossible_dependency = 16,  ///< a dependency that can no longer be met
  invalid_dependency = 17,     ///< a dependency on an unknown task or on the task itself
  permission = 18,             ///< credentials that do not allow the request (an engine's key)
};

/// Text name of an error code (`"argument"`, `"engine"`, ...).
std::string_view to_string(ErrorCode code) noexcept;

/// Base of every exception ipp throws. Carries a stable ErrorCode beside the message.
class Error : public std::runtime_error {
 public:
  Error(ErrorCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
  /// The code that classifies this error.
  [[nodiscard]] ErrorCode code() const noexcept { return code_; }

 private:
  ErrorCode code_;
};

/// A buffer or message that fails verification: corrupt, truncated, forged or of another version.
class ProtocolError : public Error {
 public:
  explicit ProtocolError(const std::string& message) : Error(ErrorCode::protocol, message) {}
};

/// A file that is not a shared library, has no ipp manifest, or was built by an incompatible SDK.
class PluginLoadError : public Error {
 public:
  explicit PluginLoadError(const std::string& message) : Error(ErrorCode::plugin_load, message) {}
};

/// No loaded plugin defines the requested task.
class TaskNotFound : public Error {
 public:
  explicit TaskNotFound(const std::string& message) : Error(ErrorCode::task_not_found, message) {}
};

/// A bare task name matches tasks in several plugins; the message lists the qualified names.
class AmbiguousTask : public Error {
 public:
  explicit AmbiguousTask(const std::string& message) : Error(ErrorCode::ambiguous_task, message) {}
};

/// Arguments that do not fit a task's signature, or a Value read as a type it does not convert to.
class ArgumentError : public Error {
 public:
  explicit ArgumentError(const std::string& message) : Error(ErrorCode::argument, message) {}
};

/// A wait that ran out of time.
class TimeoutError : public Error {
 public:
  explicit TimeoutError(const std::string& message) : Error(ErrorCode::timeout, message) {}
};

/// A task that waited longer than its `timeout` in the load-balanced queue (it never ran).
class TaskTimeout : public TimeoutError {
 public:
  using TimeoutError::TimeoutError;
};

/// A task removed from a queue (by abort) before it ran.
class TaskAborted : public Error {
 public:
  explicit TaskAborted(const std::string& message) : Error(ErrorCode::aborted, message) {}
};

/// A task cancelled while it ran, or before it started (by cancel).
class TaskCancelled : public Error {
 public:
  explicit TaskCancelled(const std::string& message) : Error(ErrorCode::cancelled, message) {}
};

/// A load-balanced task whose dependencies can no longer be met (one failed, its engine
/// died, no target engine is left); it never ran.
class ImpossibleDependency : public Error {
 public:
  explicit ImpossibleDependency(const std::string& message)
      : Error(ErrorCode::impossible_dependency, message) {}
};

/// A dependency on a msg_id the load-balanced scheduler does not know, or on the task itself.
class InvalidDependency : public Error {
 public:
  explicit InvalidDependency(const std::string& message)
      : Error(ErrorCode::invalid_dependency, message) {}
};

/// A request made with credentials that do not allow it: an engine's connection file may
/// register an engine, not push plugins, query or shut the cluster down.
class PermissionDenied : public Error {
 public:
  explicit PermissionDenied(const std::string& message) : Error(ErrorCode::permission, message) {}
};

/// A caller misused an API (a bad option, an empty view, ...).
class UsageError : public Error {
 public:
  explicit UsageError(const std::string& message) : Error(ErrorCode::usage, message) {}
};

/// The controller cannot be reached or stopped answering.
class ConnectionError : public Error {
 public:
  explicit ConnectionError(const std::string& message) : Error(ErrorCode::connection, message) {}
};

/// An error as it crosses a process boundary: what failed, where, and why.
/// This is the typed record every engine sends back for a failed task.
struct ErrorRecord {
  ErrorCode code = ErrorCode::unknown;
  std::string
      type;  ///< the C++ exception type name (`std::invalid_argument`, `ipp::ArgumentError`)
  std::string message;       ///< the exception's what()
  std::string task;          ///< qualified task name (`arith.mul`), when a task was involved
  std::string plugin;        ///< plugin name, when known
  std::int64_t engine = -1;  ///< engine id, -1 when not on an engine
  std::optional<std::uint64_t> element;  ///< index within a map block, for map failures
  std::size_t line = 0;    ///< execute: 1-based line of the failing statement (0: none)
  std::size_t column = 0;  ///< execute: 1-based column

  /// One line: `arith.mul on engine 2: std::invalid_argument: boom`
  /// (`engine 0, line 2, column 5: ...` for a statement run by execute).
  [[nodiscard]] std::string describe() const;
};

/// The type name a record of `code` carries when ipp itself raised it: `"ipp::EngineError"`
/// for ErrorCode::engine, `"ipp::TaskTimeout"` for ErrorCode::timeout (a task that waited or
/// ran too long), `"ipp::Error"` for ErrorCode::unknown. The one place these names are spelled.
[[nodiscard]] std::string_view error_type_name(ErrorCode code) noexcept;

/// An ErrorRecord of ipp's own: `code`, its error_type_name(), `message`, and where it happened
/// when known (`task`, `engine`). Task failures thrown by plugin code keep their own type name
/// and are not made here.
///
///     auto e = make_error_record(ErrorCode::engine, "engine 3 died", "arith.mul", 3);
[[nodiscard]] ErrorRecord make_error_record(ErrorCode code, std::string message,
                                            std::string task = {}, std::int64_t engine = -1);

/// A task failed remotely (or in the in-process runtime). Holds the full ErrorRecord.
class RemoteError : public Error {
 public:
  explicit RemoteError(ErrorRecord record);
  [[nodiscard]] const ErrorRecord& record() const noexcept { return record_; }
  /// Engine the task ran on, -1 if none.
  [[nodiscard]] std::int64_t engine() const noexcept { return record_.engine; }
  /// Exception type name as thrown by the task.
  [[nodiscard]] const std::string& type() const noexcept { return record_.type; }

 private:
  ErrorRecord record_;
};

/// An engine died or became unreachable while it held a task.
class EngineError : public Error {
 public:
  explicit EngineError(const std::string& message) : Error(ErrorCode::engine, message) {}
};

/// An error of another language's runtime that a task ran (a Python exception), thrown by a
/// task to be reported under that runtime's type name (`ModuleNotFoundError`) rather than a
/// C++ one. Its record's code is ErrorCode::remote.
class ForeignError : public std::runtime_error {
 public:
  ForeignError(std::string type, const std::string& message)
      : std::runtime_error(message), type_(std::move(type)) {}
  [[nodiscard]] const std::string& type() const noexcept { return type_; }

 private:
  std::string type_;
};

/// Several failures from one call (one per engine or task), each kept as a record.
class CompositeError : public Error {
 public:
  explicit CompositeError(std::vector<ErrorRecord> records);
  [[nodiscard]] const std::vector<ErrorRecord>& records() const noexcept { return records_; }

 private:
  std::vector<ErrorRecord> records_;
};

/// Throws the exception type that matches `record.code`: EngineError, TimeoutError
/// (TaskTimeout), ConnectionError, UsageError, TaskAborted, TaskCancelled,
/// ImpossibleDependency, InvalidDependency, else RemoteError (task failures).
[[noreturn]] void rethrow(const ErrorRecord& record);

}  // namespace ipp
