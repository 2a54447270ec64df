#pragma once

// The load-balanced scheduler's decisions, apart from its sockets: which engine runs which
// task, when dependencies are met or can no longer be, retries, priorities, time-outs and
// aborts. Time comes in as an argument and randomness from a seeded generator, so every
// decision can be tested without a cluster or a clock.
//
// A queued task costs little here: tables are keyed by 16-byte ids, the ready queue is a
// binary heap of (priority, order, id), and what only some tasks use (dependencies, targets,
// retries, time-outs) lives apart from the rest.

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ipp/error.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/header.hpp"

namespace ipp::sched {

using Clock = std::chrono::steady_clock;
using net::TaskId;

/// How a free engine is chosen among those that may run a task (IPython.parallel's schemes).
enum class Scheme {
  leastload,    ///< the engine with the fewest outstanding tasks per slot
  lru,          ///< the engine that was given a task longest ago
  plainrandom,  ///< any, uniformly at random
  twobin,       ///< two at random, then the one given a task longer ago
  weighted,     ///< two at random weighted by free capacity, then the less loaded one
};

/// `"leastload"` -> Scheme::leastload, ...; throws UsageError naming the known schemes.
Scheme parse_scheme(std::string_view name);
std::string_view to_string(Scheme scheme) noexcept;

/// What the scheduler keeps with a task while it is here: its request (packed; dropped once it
/// will not be sent again) and its client. The balancer only holds it, in the task's entry.
struct Carried {
  net::PackedMessage request;
  std::uint32_t client = 0;
};

struct BalancerOptions {
  Scheme scheme = Scheme::leastload;
  /// Outstanding tasks per engine. -1 (auto): one per slot (pool thread), and beyond that,
  /// tasks known to be short while what the engine holds is all short and adds up to at most
  /// `window` per slot. 0: unlimited. N > 0: at most N.
  int hwm = -1;
  std::uint64_t seed = 0;
  /// How many finished tasks are remembered for later dependencies (oldest forgotten first).
  std::size_t remember = std::size_t{1} << 20;
  /// auto: how much known-short work an engine may hold per slot beyond its running tasks.
  std::chrono::microseconds window{2000};
  /// auto: the longest task that counts as short.
  std::chrono::microseconds short_task{500};
  /// auto: at most this many outstanding tasks per slot, however short.
  int max_per_slot = 256;
};

class Balancer {
 public:
  struct Dispatch {
    TaskId msg_id;
    std::int64_t engine = -1;
  };
  struct Failure {
    TaskId msg_id;
    ErrorRecord error;
    Carried carried;  // what the task carried (empty when it was never taken in)
  };
  enum class Finish {
    done,   ///< forward the reply to the client
    retry,  ///< the task was queued again: drop this reply
    stale,  ///< not a task running here (its engine was declared dead): the hub records it
  };

  explicit Balancer(BalancerOptions options);
  Balancer(Balancer&&) noexcept;
  Balancer& operator=(Balancer&&) noexcept;
  ~Balancer();

  // ---- engines ---------------------------------------------------------------------------
  /// An engine is ready to take up to `slots` tasks at once.
  void engine_up(std::int64_t id, int slots);
  /// An engine died or left: its tasks are retried elsewhere or fail with EngineError
  /// (`reason` completes "engine N died while running task 'x' (...)").
  void engine_down(std::int64_t id, std::string_view reason, Clock::time_point now);
  /// An engine takes no new tasks (it is being removed).
  void engine_drain(std::int64_t id);
  /// Engine `id` has the tasks `names` now (a plugin loaded there), or, with `has` false, no
  /// longer has them (unloaded). A task whose name some engines are known to have goes only
  /// to those; a name no engine is known to have goes to any (which answers, e.g.
  /// TaskNotFound).
  void engine_tasks(std::int64_t id, const std::vector<std::string>& names, bool has);
  [[nodiscard]] bool has_engine(std::int64_t id) const { return engines_.count(id) != 0; }
  [[nodiscard]] int load(std::int64_t id) const;
  /// A task on engine `id` went past its time limit and was answered, but still holds a pool
  /// thread there: one slot stays taken, as by a long task, until release().
  void hold(std::int64_t id);
  /// The task behind a hold() returned: its slot is free again. Ignored without a hold.
  void release(std::int64_t id);

  // ---- tasks -----------------------------------------------------------------------------
  /// A new task named `task` (`is_map`: a block of a map; it is timed apart from single
  /// calls of the same task). Invalid or impossible dependencies fail it at once (see
  /// take_failures). `timeout`: the longest it may wait here (for dependencies or an engine).
  void submit(TaskId msg_id, const std::string& task, const net::TaskFlags& flags,
              std::optional<Clock::duration> timeout, Clock::time_point now, bool is_map = false,
              Carried carried = {});
  /// A running task's engine answered; `ran` is how long it ran there, when known (it
  /// teaches the auto capacity how long tasks of its name take). When done, what the task
  /// carried goes to `carried` (if given).
  Finish finished(TaskId msg_id, bool ok, Clock::time_point now,
                  std::optional<std::chrono::microseconds> ran = std::nullopt,
                  Carried* carried = nullptr);
  /// What a task here carries (null when it is not here).
  [[nodiscard]] Carried* carried(TaskId msg_id);
  /// Whether a task here may still be run again after a failure.
  [[nodiscard]] bool may_retry(TaskId msg_id) const;
  /// Removes a task that has not been dispatched; it fails with TaskAborted. False when the
  /// task is not waiting here.
  bool abort(TaskId msg_id);
  /// The engine running `msg_id`, if it runs here.
  [[nodiscard]] std::optional<std::int64_t> engine_of(TaskId msg_id) const;
  /// Whether `msg_id` is here: waiting, queued or running (not yet answered).
  [[nodiscard]] bool knows(TaskId msg_id) const { return tasks_.contains(msg_id); }
  /// Fails the tasks that waited past their deadline with TaskTimeout.
  void expire(Clock::time_point now);
  /// The earliest deadline of a waiting task.
  [[nodiscard]] std::optional<Clock::time_point> next_deadline() const;
  /// Places ready tasks on free engines.
  void schedule();

  /// What to send since the last call: tasks to engines, failures to clients.
  std::vector<Dispatch> take_dispatches() { return std::exchange(dispatches_, {}); }
  std::vector<Failure> take_failures() { return std::exchange(failures_, {}); }

  [[nodiscard]] std::size_t waiting() const { return tasks_.size() - running_count_; }
  [[nodiscard]] std::size_t running() const { return running_count_; }

 private:
  enum class State : std::uint8_t { blocked, ready, running };
  /// What only some tasks have.
  struct Extra {
    net::TaskFlags flags;          // dependencies and targets (priority lives in Task)
    std::set<std::int64_t> tried;  // engines it failed on
    std::optional<Clock::duration> timeout;
    std::optional<Clock::time_point> deadline;
  };
  struct Task {
    std::uint64_t seq = 0;
    std::uint32_t name = 0;  // into names_
    std::int32_t engine = -1;
    std::int32_t charged_us = -1;  // what its engine's held work counts for it (-1: long)
    std::int32_t priority = 0;
    std::int32_t retries_left = 0;
    State state = State::blocked;
    bool is_map = false;
    std::unique_ptr<Extra> extra;  // null: no flags beyond priority, never failed, no timeout
    Carried carried;
    [[nodiscard]] const net::TaskFlags& flags() const;
    [[nodiscard]] bool restricted() const {
      return extra && (!extra->flags.follow.empty() || !extra->flags.targets.empty());
    }
  };
  struct Engine {
    int slots = 1;
    int load = 0;
    int long_held = 0;               // outstanding tasks not known to be short
    int held = 0;                    // slots taken by tasks answered but still running
    std::int64_t short_work_us = 0;  // the estimates of the outstanding short ones
    bool draining = false;
    std::uint64_t last_used = 0;  // lru: when it was last given a task (logical time)
    std::unordered_set<TaskId, net::TaskIdHash> tasks;
  };
  struct Done {
    bool ok = false;
    std::int64_t engine = -1;
  };
  /// How long tasks of one name have run (an exponentially weighted mean).
  struct Estimate {
    double mean_us = 0;
    std::uint32_t samples = 0;
  };
  struct Ready {
    std::int64_t neg_priority;  // higher priority first,
    std::uint64_t seq;          // then submission order
    TaskId msg_id;
    friend bool operator<(const Ready& a, const Ready& b) {  // a heap's top is its largest
      return a.neg_priority != b.neg_priority ? a.neg_priority > b.neg_priority : a.seq > b.seq;
    }
  };
  enum class Verdict { met, waiting, unreachable };

  [[nodiscard]] std::int64_t estimate_us(const Task& t) const;  // -1: unknown or long
  [[nodiscard]] bool can_take(const Engine& e, std::int64_t estimate_us) const;
  [[nodiscard]] bool may_take_any(const Engine& e) const;
  [[nodiscard]] Verdict check(const net::Dependency& d, std::string* why) const;
  /// The engines a task may run on now (empty optional: any); fills `why` when none ever can.
  [[nodiscard]] std::optional<std::set<std::int64_t>> allowed(const Task& t, std::string* why,
                                                              bool* impossible) const;
  void evaluate(TaskId msg_id);
  void make_ready(TaskId msg_id, Task& t);
  void fail(TaskId msg_id, ErrorRecord error);
  /// Fails a task with ImpossibleDependency: "task 'x' cannot run: <why>".
  void fail_impossible(TaskId msg_id, const std::string& why);
  void record_done(TaskId msg_id, bool ok, std::int64_t engine);
  void requeue(TaskId msg_id, Task& t, Clock::time_point now);
  void settle();
  std::int64_t pick(const std::optional<std::set<std::int64_t>>& allowed, const Task& t,
                    std::int64_t estimate);
  void place(TaskId msg_id, Task& t, std::int64_t engine, std::int64_t estimate);
  /// Takes a running task off its engine's books.
  void release(TaskId msg_id, Task& t);
  [[nodiscard]] std::string engine_list() const;
  static std::string estimate_key(const std::string& task, bool is_map);
  /// The engines known to have task `t`'s name, or null when none is known to (any will do).
  [[nodiscard]] const std::set<std::int64_t>* providers_of(const Task& t) const;
  /// Task names, each kept once while tasks of that name are here.
  std::uint32_t intern(const std::string& name);
  [[nodiscard]] const std::string& name_of(const Task& t) const { return names_[t.name].name; }
  using TaskMap = std::unordered_map<TaskId, Task, net::TaskIdHash>;
  /// Forgets a task (and its name's use); returns what it carried.
  Carried erase(TaskMap::iterator it);

  BalancerOptions options_;
  std::mt19937_64 rng_;
  std::uint64_t seq_ = 0;
  std::uint64_t clock_ = 0;  // logical time for lru
  std::map<std::int64_t, Engine> engines_;
  TaskMap tasks_;  // submitted and not finished
  struct Name {
    std::string name;
    std::uint32_t uses = 0;
  };
  std::vector<Name> names_;
  std::unordered_map<std::string, std::uint32_t> name_index_;
  std::vector<std::uint32_t> free_names_;
  /// Task name -> the engines that have it (none empty), from their plugins' loads.
  std::unordered_map<std::string, std::set<std::int64_t>> providers_;
  std::size_t running_count_ = 0;
  // Ready tasks, best first (a heap). Entries of tasks no longer ready (aborted, failed,
  // placed) are skipped when they come up: the seq tells a stale entry from the task's
  // current one. A deque grows without copying the whole queue.
  std::deque<Ready> ready_;
  std::size_t ready_count_ = 0;  // live entries in ready_
  std::unordered_map<TaskId, std::vector<TaskId>, net::TaskIdHash> dependents_;
  std::set<std::pair<Clock::time_point, TaskId>> deadlines_;
  std::unordered_map<TaskId, Done, net::TaskIdHash> done_;
  std::deque<TaskId> done_order_;
  std::unordered_map<std::string, Estimate> estimates_;
  std::vector<Dispatch> dispatches_;
  std::vector<Failure> failures_;
  std::vector<TaskId> to_evaluate_;
};

}  // namespace ipp::sched
