#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ipp/codec.hpp"
#include "ipp/runtime/executor.hpp"
#include "ipp/runtime/invoke.hpp"
#include "ipp/runtime/namespace.hpp"
#include "ipp/runtime/plugin_store.hpp"
#include "ipp/runtime/task_registry.hpp"
#include "ipp/value.hpp"

namespace ipp {

namespace statements {
struct Expr;
struct Statement;
}  // namespace statements

struct RuntimeOptions {
  int threads = 0;                  ///< pool threads; <= 0 means the number of cores
  std::filesystem::path store_dir;  ///< content-addressed plugin store (required)
  std::int64_t engine_id = -1;      ///< what ipp::Context::engine_id() reports
  /// The most bytes a map's output may take (0: as much as the memory available allows).
  std::uint64_t max_map_output = 0;
};

/// One queued or running task, as its engine sees it: the flag ipp::Context::cancelled()
/// reads, and when a pool thread started it.
struct TaskControl {
  std::atomic<bool> cancelled{false};
  std::atomic<std::int64_t> started_us{0};  ///< microseconds since the epoch; 0: not yet
  /// Marks the start; false (and nothing marked) when it was cancelled before.
  bool start() noexcept;
};

/// The record of a task cancelled before it started: ErrorCode::cancelled, ipp::TaskCancelled.
[[nodiscard]] ErrorRecord cancelled_before_start(std::string_view task, std::int64_t engine);

/// The plugin runtime of one engine: a plugin store, the loaded tasks, a namespace, and a
/// oneTBB pool that runs calls. All methods are thread-safe.
///
///     ipp::Runtime rt({.threads = 4, .store_dir = "/tmp/ipp-store"});
///     rt.load("build/arith.so");
///     ipp::Value r = rt.call("mul", {5, 6});                        // 30
///     ipp::Value m = rt.map("mul", {ipp::Range{1, 10}, ipp::Range{2, 11}});
class Runtime {
 public:
  using Callback = std::function<void(TaskOutcome)>;

  explicit Runtime(RuntimeOptions options);
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  /// Stores the plugin file at `file` by content hash, loads it and registers its tasks,
  /// replacing an older build of the same plugin for new calls. Loading the build that is
  /// already registered again is a no-op. Throws PluginLoadError; nothing changes then.
  std::shared_ptr<const LoadedPlugin> load(const std::filesystem::path& file);
  /// Same, from the file's bytes (as received over the network).
  std::shared_ptr<const LoadedPlugin> load_bytes(std::span<const std::byte> bytes);

  /// Unregisters the plugin named `name`: new calls of its tasks fail with TaskNotFound,
  /// calls already running finish on its code, which is unloaded after the last of them.
  /// Returns whether a plugin of that name was registered.
  bool unload(std::string_view name);

  [[nodiscard]] std::vector<std::shared_ptr<const LoadedPlugin>> plugins() const {
    return registry_.plugins();
  }
  /// Registers the plugin file `file`, named `name`, to be loaded the first time one of its
  /// tasks is asked for by its qualified name (`name.task`) or `execute` imports it: a built-in
  /// plugin that costs something to load (python maps libpython) costs nothing until used.
  void load_on_demand(std::string name, std::filesystem::path file);

  /// Throws TaskNotFound or AmbiguousTask.
  [[nodiscard]] TaskHandle resolve(std::string_view task) const { return registry_.resolve(task); }

  /// Runs `task` on the pool with `args` and waits for it. Throws TaskNotFound,
  /// AmbiguousTask, or RemoteError carrying the task's error record.
  Value call(std::string_view task, const Value::List& args = {});
  /// Runs `task` over equally long sequences (one per parameter) in parallel, and waits.
  /// Returns an array for numeric results, else a list, in input order.
  Value map(std::string_view task, const Value::List& sequences);

  /// Queues one call; `done` runs on a pool thread with the outcome (errors included:
  /// unknown tasks and bad buffers come back as error outcomes). `control`, when given, is
  /// what ipp::Context::cancelled() reads and where the start time is written; a task
  /// cancelled before a pool thread takes it does not run (an ErrorCode::cancelled outcome).
  ///
  /// A task whose recent calls all took under kQuickBelow goes to the pool as quick (see
  /// Executor::lead), unless `may_be_quick` is false (a task with a time limit, which the
  /// receiving loop's turns watch).
  void submit(std::string_view task, Payload args, Callback done,
              std::shared_ptr<TaskControl> control = nullptr, bool may_be_quick = true);
  /// Queues a map over `sequences` (see invoke_map).
  void submit_map(std::string_view task, Payload sequences, Callback done,
                  std::shared_ptr<TaskControl> control = nullptr);

  /// Runs `job` on the pool once every job submitted before it here has finished, then
  /// `done` with its outcome: namespace operations from clients (push, pull, clear,
  /// execute, calls with ipp::ref arguments or a result name) take effect one at a time,
  /// in the order they arrive. Plain calls are not ordered and run beside them.
  void submit_ordered(std::function<TaskOutcome()> job, Callback done);

  /// Runs `code` (see ipp/runtime/statements.hpp) in the namespace on the calling thread.
  /// A syntax error anywhere stops the block before anything runs; a failing statement
  /// stops it there, with the statements before it in effect. Errors carry line and column.
  TaskOutcome execute(std::string_view code, const std::atomic<bool>* cancelled = nullptr);

  /// Runs a call (or a map block) on the calling thread: ipp::ref arguments are replaced by
  /// the namespace's values first (a missing name fails with NameError), and when `bind` is
  /// not empty the result is bound to that name instead of returned.
  TaskOutcome run_now(std::string_view task, const Payload& args, bool is_map,
                      const std::string& bind = {}, const std::atomic<bool>* cancelled = nullptr);

  /// True when the top level of `args` (a List) holds an ipp::ref. Throws ProtocolError on a
  /// corrupt buffer.
  [[nodiscard]] static bool has_refs(const Payload& args);

  /// Empties the namespace and forgets the plugins `execute` imported.
  void clear_namespace();

  /// A task is quick once its last kQuickRuns calls each took less than this.
  static constexpr std::chrono::microseconds kQuickBelow{200};
  static constexpr std::uint32_t kQuickRuns = 8;
  /// Whether submit() would hand `task` to the pool as quick now.
  [[nodiscard]] bool quick(std::string_view task);

  [[nodiscard]] Namespace& ns() noexcept { return ns_; }
  [[nodiscard]] Executor& executor() noexcept { return executor_; }
  [[nodiscard]] const PluginStore& store() const noexcept { return store_; }
  [[nodiscard]] std::int64_t engine_id() const noexcept { return engine_id_.load(); }
  /// The id the controller gave this engine (engines learn it after the runtime starts).
  void set_engine_id(std::int64_t id) noexcept { engine_id_.store(id); }

 private:
  std::shared_ptr<const LoadedPlugin> register_stored(const StoredPlugin& stored);
  void submit_impl(std::string_view task, Payload payload, Callback done,
                   std::shared_ptr<TaskControl> control, bool is_map, bool may_be_quick = false);
  /// Learns from one call of `times`'s task that took `took` (see kQuickBelow).
  static void ran(CallTimes& times, Clock::duration took) noexcept;
  [[nodiscard]] static bool quick(const CallTimes& times) noexcept;
  TaskOutcome wait_for(std::string_view task, Payload payload, bool is_map);
  // execute(): one statement, an expression, a call in one (each throws a failure record).
  void run_statement(const statements::Statement& s, const InvokeContext& ctx);
  Value eval(const statements::Expr& e, const InvokeContext& ctx);
  Value call_in_statement(const statements::Expr& e, const InvokeContext& ctx);
  void import_plugins(const statements::Statement& s);
  /// registry_.resolve(), loading an on-demand plugin the task names first when needed.
  TaskHandle resolve_loading(std::string_view task);
  /// Loads the on-demand plugin `name`, once; whether one was loaded.
  bool load_wanted(std::string_view name);
  [[nodiscard]] bool imported(std::string_view plugin) const;

  std::atomic<std::int64_t> engine_id_;
  std::uint64_t max_map_output_;
  PluginStore store_;
  TaskRegistry registry_;
  Namespace ns_;
  std::mutex load_mutex_;
  std::mutex on_demand_mutex_;
  std::map<std::string, std::filesystem::path, std::less<>> on_demand_;  // not loaded yet
  mutable std::mutex imports_mutex_;
  std::set<std::string, std::less<>> imports_;  // plugins `execute` imported
  std::mutex strand_mutex_;
  std::deque<std::pair<std::function<TaskOutcome()>, Callback>> strand_;
  bool strand_running_ = false;
  // Declared last so it is destroyed first: its destructor waits for running tasks, which
  // use everything above.
  Executor executor_;
};

}  // namespace ipp
