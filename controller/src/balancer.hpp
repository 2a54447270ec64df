#pragma once

// The load-balanced scheduler's decisions, apart from its sockets: which engine runs which
// task, when dependencies are met or can no longer be, retries, priorities, time-outs and
// aborts. Time comes in as an argument and randomness from a seeded generator, so every
// decision can be tested without a cluster or a clock.

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ipp/error.hpp"
#include "ipp/net/header.hpp"

namespace ipp::sched {

using Clock = std::chrono::steady_clock;

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

struct BalancerOptions {
  Scheme scheme = Scheme::leastload;
  /// Outstanding tasks per engine: -1 = its slots (pool threads), 0 = unlimited, N = N.
  int hwm = -1;
  std::uint64_t seed = 0;
  /// How many finished tasks are remembered for later dependencies (oldest forgotten first).
  std::size_t remember = std::size_t{1} << 20;
};

class Balancer {
 public:
  struct Dispatch {
    std::string msg_id;
    std::int64_t engine = -1;
  };
  struct Failure {
    std::string msg_id;
    ErrorRecord error;
  };
  enum class Finish {
    done,   ///< forward the reply to the client
    retry,  ///< the task was queued again: drop this reply
    stale,  ///< not a task running here (its engine was declared dead): the hub records it
  };

  explicit Balancer(BalancerOptions options);

  // ---- engines ---------------------------------------------------------------------------
  /// An engine is ready to take up to `slots` tasks at once.
  void engine_up(std::int64_t id, int slots);
  /// An engine died or left: its tasks are retried elsewhere or fail with EngineError
  /// (`reason` completes "engine N died while running task 'x' (...)").
  void engine_down(std::int64_t id, std::string_view reason, Clock::time_point now);
  /// An engine takes no new tasks (it is being removed).
  void engine_drain(std::int64_t id);
  [[nodiscard]] bool has_engine(std::int64_t id) const { return engines_.count(id) != 0; }
  [[nodiscard]] int load(std::int64_t id) const;

  // ---- tasks -----------------------------------------------------------------------------
  /// A new task. Invalid or impossible dependencies fail it at once (see take_failures).
  /// `timeout`: the longest it may wait here (for dependencies or a free engine).
  void submit(const std::string& msg_id, const std::string& task, const net::TaskFlags& flags,
              std::optional<Clock::duration> timeout, Clock::time_point now);
  /// A running task's engine answered.
  Finish finished(const std::string& msg_id, bool ok, Clock::time_point now);
  /// Removes a task that has not been dispatched; it fails with TaskAborted. False when the
  /// task is not waiting here.
  bool abort(const std::string& msg_id);
  /// The engine running `msg_id`, if it runs here.
  [[nodiscard]] std::optional<std::int64_t> engine_of(const std::string& msg_id) const;
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
  enum class State { blocked, ready, running };
  struct Task {
    std::string task;
    net::TaskFlags flags;
    State state = State::blocked;
    std::uint64_t seq = 0;
    std::int64_t engine = -1;
    int retries_left = 0;
    std::set<std::int64_t> tried;  // engines it failed on
    std::optional<Clock::duration> timeout;
    std::optional<Clock::time_point> deadline;
  };
  struct Engine {
    int slots = 1;
    int load = 0;
    bool draining = false;
    std::uint64_t last_used = 0;  // lru: when it was last given a task (logical time)
    std::unordered_set<std::string> tasks;
  };
  struct Done {
    bool ok = false;
    std::int64_t engine = -1;
  };
  enum class Verdict { met, waiting, unreachable };
  using Key = std::pair<std::int64_t, std::uint64_t>;  // (-priority, seq): higher first, FIFO

  [[nodiscard]] int limit(const Engine& e) const;
  [[nodiscard]] bool is_free(const Engine& e) const { return !e.draining && e.load < limit(e); }
  [[nodiscard]] Verdict check(const net::Dependency& d, std::string* why) const;
  /// The engines a task may run on now (empty optional: any); fills `why` when none ever can.
  [[nodiscard]] std::optional<std::set<std::int64_t>> allowed(const Task& t, std::string* why,
                                                              bool* impossible) const;
  void evaluate(const std::string& msg_id);
  void make_ready(const std::string& msg_id, Task& t);
  void fail(const std::string& msg_id, ErrorRecord error);
  /// Fails a task with ImpossibleDependency: "task 'x' cannot run: <why>".
  void fail_impossible(const std::string& msg_id, const std::string& why);
  void record_done(const std::string& msg_id, bool ok, std::int64_t engine);
  void requeue(const std::string& msg_id, Task& t, Clock::time_point now);
  void settle();
  std::int64_t pick(const std::optional<std::set<std::int64_t>>& allowed, const Task& t);
  void place(const std::string& msg_id, Task& t, std::int64_t engine);
  [[nodiscard]] std::string engine_list() const;

  BalancerOptions options_;
  std::mt19937_64 rng_;
  std::uint64_t seq_ = 0;
  std::uint64_t clock_ = 0;  // logical time for lru
  std::map<std::int64_t, Engine> engines_;
  std::unordered_map<std::string, Task> tasks_;  // submitted and not finished
  std::size_t running_count_ = 0;
  std::map<Key, std::string> ready_;  // ready tasks, in the order they should run
  std::unordered_map<std::string, std::vector<std::string>> dependents_;  // id -> tasks waiting
  std::set<std::pair<Clock::time_point, std::string>> deadlines_;
  std::unordered_map<std::string, Done> done_;
  std::deque<std::string> done_order_;
  std::vector<Dispatch> dispatches_;
  std::vector<Failure> failures_;
  std::vector<std::string> to_evaluate_;
};

}  // namespace ipp::sched
