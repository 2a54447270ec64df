#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipp/error.hpp"
#include "ipp/value.hpp"

namespace ipp {

namespace detail {
struct ClientCore;
struct ResultState;
}  // namespace detail

using Duration = std::chrono::milliseconds;

/// When and where one task ran (microseconds since the Unix epoch; 0 when unknown).
/// A task's times, in microseconds since the epoch in the controller's clock: its start and end
/// as its engine stamped them, and this client's own (submitted, received) corrected by the
/// difference it measures between its clock and the controller's (left as they are where that
/// difference is within its own error). So durations between them are never negative, whatever
/// the hosts' clocks say.
struct TaskMetadata {
  std::string msg_id;
  std::int64_t engine = -1;
  std::int64_t submitted = 0;
  std::int64_t started = 0;
  std::int64_t completed = 0;
  std::int64_t received = 0;
  /// What the task printed to its standard output and error on the engine (bounded: a note
  /// at the end says how much was dropped); empty when nothing.
  std::string stdout_text;
  std::string stderr_text;
  /// Seconds the task ran on its engine.
  [[nodiscard]] double elapsed() const noexcept { return (completed - started) / 1e6; }
};

/// The outcome of an asynchronous call, like IPython.parallel's AsyncResult.
/// Copies share the same state; thread-safe.
///
///     ipp::AsyncResult r = view.apply_async("wait_here", {2.0});
///     ipp::Value pids = r.get(std::chrono::seconds(10));   // throws on failure or timeout
class AsyncResult {
 public:
  /// Waits for completion (forever when `timeout` is empty) and returns the value: one value
  /// for a single task, a list per engine for a multi-engine apply, the gathered sequence for
  /// a map. Throws RemoteError (one failure), CompositeError (several), EngineError (an
  /// engine died), TimeoutError.
  Value get(std::optional<Duration> timeout = std::nullopt)
      const;  // NOLINT(modernize-use-nodiscard): waiting and raising is a use
  /// Waits up to `timeout`; returns ready().
  bool wait(std::optional<Duration> timeout = std::nullopt) const;
  [[nodiscard]] bool ready() const;
  /// How many of this result's tasks (the messages it sent: one per engine of a multi-engine
  /// call, one per block or chunk of a map) have finished, and how many there are.
  struct Progress {
    std::size_t done = 0;
    std::size_t total = 0;
  };
  [[nodiscard]] Progress progress() const;
  /// True when ready and nothing failed. Throws UsageError before ready().
  [[nodiscard]] bool successful() const;
  [[nodiscard]] std::vector<std::string> msg_ids() const;
  /// One entry per task, in submission order (filled in as replies arrive). Waits up to 2 s
  /// for the client's first measurement of the controller's clock, when it has none yet.
  [[nodiscard]] std::vector<TaskMetadata> metadata() const;
  /// Removes this result's tasks that have not started (they fail with TaskAborted).
  void abort() const;
  /// Cancels this result's tasks: those not started do not run; running ones see
  /// ipp::Context::cancelled() and are reported as TaskCancelled when they return.
  void cancel() const;

  explicit AsyncResult(std::shared_ptr<detail::ResultState> state) : state_(std::move(state)) {}

 private:
  std::shared_ptr<detail::ResultState> state_;
};

class NamespaceItem;
struct TaskFlags;

/// Runs tasks on named engines. A view on one engine yields one value; on several, a list
/// with one value per engine in target order.
///
/// Each engine keeps a namespace (name -> Value) that the view reads and writes:
///
///     auto view = rc.direct_view();
///     view.push({{"a", 1}, {"v", std::vector<double>(1000, 1.0)}});
///     view["b"] = 2;                                // binds b on every engine
///     ipp::Value as = view["a"];                     // [1, 1, 1, 1]: one per engine
///     view.scatter("x", ipp::Range{0, 1000});        // a contiguous block per engine
///     view.apply_to("y", "mul", {ipp::ref("x"), 2}); // y = mul(x, 2) stays on the engines
///     view.execute("import sysinfo; p = sysinfo.getpid()").get();
///
/// Namespace operations (push, pull, clear, scatter, gather, execute, and calls with
/// ipp::ref arguments or a result name) take effect on each engine one at a time, in the
/// order the engine receives them; each binding is replaced whole, so a reader sees the old
/// value or the new one, never a mix. Plain calls run beside them on the engine's pool.
class DirectView {
 public:
  AsyncResult apply_async(const std::string& task, const Value::List& args = {}) const;
  Value apply_sync(const std::string& task, const Value::List& args = {}) const;
  Value apply(const std::string& task, const Value::List& args = {}) const {
    return apply_sync(task, args);
  }
  /// Splits each sequence (array, list or range) into contiguous blocks, one per engine, runs
  /// each block in parallel on its engine, and gathers the results in order.
  AsyncResult map_async(const std::string& task, const Value::List& sequences) const;
  Value map(const std::string& task, const Value::List& sequences) const;

  /// Like apply, but each engine binds the result to `name` in its namespace instead of
  /// sending it back; the result's value is null (or the error).
  AsyncResult apply_to_async(const std::string& name, const std::string& task,
                             const Value::List& args = {}) const;
  void apply_to(const std::string& name, const std::string& task,
                const Value::List& args = {}) const;
  /// Like map, but each engine binds its block's results to `name`.
  AsyncResult map_to_async(const std::string& name, const std::string& task,
                           const Value::List& sequences) const;
  void map_to(const std::string& name, const std::string& task, const Value::List& sequences) const;

  // ---- namespaces --------------------------------------------------------------------------
  /// Binds each name to its value on every target engine.
  AsyncResult push_async(const Value::Map& values) const;
  void push(const Value::Map& values) const;
  /// The value bound to `name`: one value on a single-engine view, else a list with one
  /// value per engine. A name an engine lacks fails with NameError naming it and the engine.
  AsyncResult pull_async(const std::string& name) const;
  Value pull(const std::string& name) const;
  /// Several names: per engine, the list of their values in the order given.
  AsyncResult pull_async(const std::vector<std::string>& names) const;
  Value pull(const std::vector<std::string>& names) const;
  Value pull(std::initializer_list<std::string> names) const {
    return pull(std::vector<std::string>(names));
  }
  /// `view["a"]` reads like pull("a"); `view["a"] = v` is push({{"a", v}}).
  NamespaceItem operator[](std::string name) const;
  /// Splits `sequence` (array, list or range) into contiguous blocks, one per target engine
  /// in order (the first `size % engines` one element longer), and binds each engine's block
  /// to `name`. Arrays are sliced without copying and stay typed arrays.
  AsyncResult scatter_async(const std::string& name, const Value& sequence) const;
  void scatter(const std::string& name, const Value& sequence) const;
  /// Joins the engines' values of `name` in target order: arrays of one dtype into one array,
  /// contiguous ranges into one range, anything else into a list.
  AsyncResult gather_async(const std::string& name) const;
  Value gather(const std::string& name) const;
  /// Empties the namespaces (and forgets the plugins execute imported).
  AsyncResult clear_async() const;
  void clear() const;
  /// Runs statements in each target engine's namespace (see docs/execute.md):
  ///
  ///     view.execute("import sysinfo\na = sysinfo.getpid()").get();
  ///
  /// A failure is a RemoteError whose record() carries the line and column.
  AsyncResult execute(const std::string& code) const;

  [[nodiscard]] const std::vector<std::int64_t>& targets() const noexcept { return targets_; }

  /// A view like this one whose calls carry `flags`; a direct view takes only `time_limit`
  /// (the others are load-balancing flags: UsageError).
  [[nodiscard]] DirectView with(const TaskFlags& flags) const;

  DirectView(std::shared_ptr<detail::ClientCore> core, std::vector<std::int64_t> targets,
             bool single)
      : core_(std::move(core)), targets_(std::move(targets)), single_(single) {}

 private:
  AsyncResult namespace_request(const std::string& op, const std::vector<Value>& payloads,
                                int combine, bool unwrap = false) const;
  AsyncResult map_impl(const std::string& task, const Value::List& sequences,
                       const std::string& bind) const;

  std::shared_ptr<detail::ClientCore> core_;
  std::vector<std::int64_t> targets_;
  bool single_;
  std::optional<Duration> time_limit_;
};

/// One name in the namespaces of a DirectView's engines (what `view["a"]` returns).
class NamespaceItem {
 public:
  /// Pulls the value (see DirectView::pull).
  [[nodiscard]] Value get() const { return view_.pull(name_); }
  operator Value() const { return get(); }  // NOLINT(google-explicit-constructor)
  /// Pushes `value` under this name to every engine of the view, and waits.
  const NamespaceItem& operator=(
      const Value& value) const {  // NOLINT(misc-unconventional-assign-operator)
    view_.push({{name_, value}});
    return *this;
  }
  NamespaceItem(DirectView view, std::string name)
      : view_(std::move(view)), name_(std::move(name)) {}

 private:
  DirectView view_;
  std::string name_;
};

/// Tasks a load-balanced task depends on (its `after` or `follow`), by msg_id or AsyncResult.
///
///     ipp::Dependency{a, b}                    // both must succeed (the default)
///     ipp::Dependency{a, b}.any()              // one of them is enough
///     ipp::Dependency{a}.on_failure()          // met when `a` failed
///     ipp::Dependency{a}.on_finish()           // met when `a` finished either way
///
/// Only load-balanced tasks of the same controller can be depended on; a dependency that
/// can no longer be met fails the task with ImpossibleDependency, one on an unknown msg_id
/// (or on the task itself) with InvalidDependency.
struct Dependency {
  std::vector<std::string> msg_ids{};
  bool all = true;       ///< every one must meet the condition (false: any one)
  bool success = true;   ///< a task that succeeded meets it
  bool failure = false;  ///< a task that failed meets it

  Dependency() = default;
  Dependency(std::vector<std::string> ids)  // NOLINT(google-explicit-constructor)
      : msg_ids(std::move(ids)) {}
  Dependency(const AsyncResult& result)  // NOLINT(google-explicit-constructor)
      : msg_ids(result.msg_ids()) {}
  Dependency(std::initializer_list<AsyncResult> results) {
    for (const auto& r : results) {
      auto ids = r.msg_ids();
      msg_ids.insert(msg_ids.end(), ids.begin(), ids.end());
    }
  }
  [[nodiscard]] Dependency any() const {
    Dependency d = *this;
    d.all = false;
    return d;
  }
  [[nodiscard]] Dependency on_failure() const {
    Dependency d = *this;
    d.success = false;
    d.failure = true;
    return d;
  }
  [[nodiscard]] Dependency on_finish() const {
    Dependency d = *this;
    d.success = d.failure = true;
    return d;
  }
  [[nodiscard]] bool empty() const noexcept { return msg_ids.empty(); }
};

/// Per-task options of a LoadBalancedView (all of them) or a DirectView (time_limit only).
///
///     auto lb = rc.load_balanced_view().with({.retries = 1, .priority = 5});
///     lb.with({.after = {a, b}}).apply_async("combine");
struct TaskFlags {
  /// The longest a task may wait in the scheduler (for its dependencies or a free engine);
  /// past it the task fails with TaskTimeout without having run. Empty: as long as it takes
  /// (also while no engine is registered: queued tasks run when engines arrive).
  std::optional<Duration> timeout{};
  /// After a failure (an error, or its engine dying) run it again on a different engine, up
  /// to this many times.
  int retries = 0;
  /// Run only once these tasks have finished (as the dependency's conditions say).
  Dependency after{};
  /// Run on an engine where these tasks ran (with all: the one engine where all of them ran).
  Dependency follow{};
  /// Only these engines may run it (empty: any).
  std::vector<std::int64_t> targets{};
  /// Among tasks ready to run, higher priorities go first (the same: in submission order).
  int priority = 0;
  /// The longest the task may run; past it the client gets TaskTimeout and the task is
  /// cancelled (it sees ipp::Context::cancelled()).
  std::optional<Duration> time_limit{};
};

/// What an abort or cancel did: tasks removed from a queue before they ran (they fail with
/// TaskAborted), tasks passed on to the engines that hold them, and msg_ids no queue holds
/// (finished, or unknown).
struct ControlSummary {
  std::vector<std::string> removed;
  std::vector<std::string> signalled;
  std::vector<std::string> not_pending;
};

/// Runs tasks wherever the scheduler finds a free engine.
///
///     auto lb = rc.load_balanced_view().with({.timeout = std::chrono::seconds(5)});
class LoadBalancedView {
 public:
  /// A view like this one whose tasks carry `flags`.
  [[nodiscard]] LoadBalancedView with(TaskFlags flags) const {
    LoadBalancedView v(core_);
    v.flags_ = flags;
    return v;
  }
  [[nodiscard]] const TaskFlags& flags() const noexcept { return flags_; }

  AsyncResult apply_async(const std::string& task, const Value::List& args = {}) const;
  Value apply_sync(const std::string& task, const Value::List& args = {}) const;
  Value apply(const std::string& task, const Value::List& args = {}) const {
    return apply_sync(task, args);
  }
  /// Splits the sequences into chunks of `chunksize` elements (0: about four chunks per
  /// engine), schedules each chunk, and gathers the results in input order.
  AsyncResult map_async(const std::string& task, const Value::List& sequences,
                        std::uint64_t chunksize = 0) const;
  Value map(const std::string& task, const Value::List& sequences,
            std::uint64_t chunksize = 0) const;

  explicit LoadBalancedView(std::shared_ptr<detail::ClientCore> core) : core_(std::move(core)) {}

 private:
  std::shared_ptr<detail::ClientCore> core_;
  TaskFlags flags_;
};

/// One condition of Client::db_query: FIELD OP VALUE with OP one of
/// `==  !=  <  <=  >  >=  in  glob`.
///
///     ipp::DbCondition{"task", "glob", "arith.*"}
///     ipp::DbCondition::parse("submitted >= 1700000000000000")
struct DbCondition {
  std::string field;
  std::string op;
  Value value;
  /// Reads `FIELD OP VALUE` (VALUE a literal; a bare word is a string). Throws UsageError.
  static DbCondition parse(std::string_view text);
};

struct ClientOptions {
  std::optional<std::filesystem::path>
      profile_dir;  ///< default: $IPP_PROFILE_DIR, ~/.ipp/profile_default
  /// The client connection file of a controller started elsewhere (by hand, or on another
  /// host); default: $IPP_CONNECTION_FILE when no profile_dir is given, else
  /// PROFILE/ipp-client.json.
  std::optional<std::filesystem::path> connection_file{};
  Duration timeout{10000};  ///< how long queries wait for the controller
  /// Large arrays to and from the cluster go through shared memory when the controller is on
  /// this host and offers it (see docs/architecture.md); false: always through the socket.
  bool shared_memory = true;
};

/// A connection to a cluster, like IPython.parallel's Client.
///
///     ipp::Client rc;                               // the default profile's controller
///     rc.ids();                                     // [0, 1, 2, 3]
///     rc[0].apply("mul", {5, 6});                   // 30
///     rc.direct_view().map("mul", {ipp::Range{1, 10}, ipp::Range{2, 11}});
///
/// Thread-safe: views and results may be used from several threads.
class Client {
 public:
  /// Reads the connection file. Throws ConnectionError when there is none.
  explicit Client(ClientOptions options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  /// Ids of the registered engines. Throws ConnectionError when the controller does not answer.
  [[nodiscard]] std::vector<std::int64_t> ids() const;
  DirectView operator[](std::int64_t id) const;
  DirectView operator[](const std::vector<std::int64_t>& ids) const;
  /// All engines registered now.
  [[nodiscard]] DirectView direct_view() const;
  [[nodiscard]] LoadBalancedView load_balanced_view() const;

  /// Sends a plugin to every engine; returns {engine id: "ok"} when all loaded it.
  /// Throws PluginLoadError (file refused, or engines that failed, each named).
  Value push_plugin(const std::filesystem::path& file) const;
  /// Unloads the plugin named `name` from every engine, and engines that register later no
  /// longer get it; calls already running finish on it. Returns {engine id: "ok"} when every
  /// engine has unloaded it. Throws UsageError when no plugin of that name is loaded.
  Value unload_plugin(const std::string& name) const;
  /// Plugins pushed so far: [{name, hash}].
  [[nodiscard]] Value plugins() const;
  /// Per engine: {"queue": tasks outstanding, "completed": tasks done}.
  [[nodiscard]] Value queue_status() const;
  /// Engines with their pid, thread count and readiness.
  [[nodiscard]] Value engines() const;
  /// Waits until every task this client submitted is done; false on timeout.
  bool wait(std::optional<Duration> timeout = std::nullopt) const;
  /// Stops the controller and its engines.
  void shutdown() const;

  /// Removes queued tasks before they run (they fail with TaskAborted); tasks already
  /// running are not touched. Any msg_ids of this or another client.
  ControlSummary abort(const std::vector<std::string>& msg_ids) const;
  /// Cancels tasks: queued ones do not run, running ones see ipp::Context::cancelled() and
  /// are reported as TaskCancelled when they return.
  ControlSummary cancel(const std::vector<std::string>& msg_ids) const;

  // ---- the hub's task database ---------------------------------------------------------------
  /// The result of a task the hub recorded, from any client (also a process started after the
  /// submitting one exited). Waits while the task is pending or running, up to `timeout`
  /// (forever when empty). Throws the task's error as it was raised; a RemoteError with code
  /// name_error when the hub has no such task; UsageError with --db none.
  Value get_result(const std::string& msg_id, std::optional<Duration> timeout = std::nullopt) const;
  /// Which of `msg_ids` are pending (or running), completed, or unknown to the hub:
  /// {"pending": [...], "completed": [...], "unknown": [...]}.
  [[nodiscard]] Value result_status(const std::vector<std::string>& msg_ids) const;
  /// Runs recorded tasks again with their stored arguments, on the same queue and engine;
  /// each new task has a new msg_id and its record links to the original (resubmitted_from).
  AsyncResult resubmit(const std::vector<std::string>& msg_ids) const;
  /// Records matching every condition, oldest first: one map per task with its fields
  /// (msg_id, client, queue, kind, task, plugin, plugin_hash, target, engine, bind,
  /// submitted, started, completed, received, status, error, resubmitted_from), or only
  /// `keys` (and msg_id) when given; at most `limit` (0: all).
  [[nodiscard]] Value db_query(const std::vector<DbCondition>& where,
                               const std::vector<std::string>& keys = {},
                               std::int64_t limit = 0) const;
  /// Msg ids of recorded tasks, oldest first (the last `limit` when limit > 0).
  [[nodiscard]] std::vector<std::string> hub_history(std::int64_t limit = 0) const;
  /// Removes records; each returns how many went. Unfinished tasks are kept by the
  /// age and all forms.
  std::int64_t purge_results(const std::vector<std::string>& msg_ids) const;
  std::int64_t purge_results_before(std::chrono::system_clock::time_point before) const;
  std::int64_t purge_all_results() const;

 private:
  std::shared_ptr<detail::ClientCore> core_;
};

}  // namespace ipp
