#pragma once

// The tasks an engine holds, queued or running: how each is aborted, cancelled, timed out,
// dropped, and when one that ignores its time limit makes the engine give up.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "ipp/net/header.hpp"
#include "ipp/runtime/runtime.hpp"

namespace ipp::engine {

/// A task the engine holds, queued or running.
struct Job {
  std::shared_ptr<TaskControl> control = std::make_shared<TaskControl>();
  enum Verdict : int { none, aborted, cancelled, timed_out };
  std::atomic<int> verdict{none};
  std::atomic<bool> replied{false};  // whoever sets it sends the one reply
  std::int64_t time_limit_ms = 0;
  int channel = 0;      // 0 direct, 1 balanced
  net::Header request;  // msg_id, session, task, submitted
};

/// The jobs by msg_id, those with a time limit, and those past it that still run. Used by
/// the engine's receiving loop alone (a job's atomics are shared with the pool thread that
/// runs it). Times are microseconds since the epoch (net::now_us()).
class JobTable {
 public:
  explicit JobTable(std::chrono::milliseconds grace) : grace_us_(grace.count() * 1000) {}

  /// Holds `job` under its request's msg_id.
  void add(std::shared_ptr<Job> job);
  /// Forgets the jobs whose replies went (their msg_ids).
  void forget(const std::vector<std::string>& msg_ids);
  [[nodiscard]] bool empty() const noexcept { return jobs_.empty(); }
  /// Whether the loop must look at the clock often (jobs with a time limit, or past it).
  [[nodiscard]] bool timed() const noexcept { return !limited_.empty() || !overdue_.empty(); }

  /// abort (`cancel` false): the named jobs that have not started will not run; cancel: the
  /// same, and running ones see ipp::Context::cancelled() and are reported cancelled.
  void control(const std::vector<std::string>& msg_ids, bool cancel);
  /// The jobs that ran past their time limit by `now`: each is marked timed out, cancelled and
  /// replied (the caller sends their TaskTimeout), and watched: see past_grace().
  std::vector<std::shared_ptr<Job>> expire(std::int64_t now);
  /// A job that still runs the grace period after its time limit went by (it ignores
  /// cancellation), or null.
  [[nodiscard]] std::shared_ptr<Job> past_grace(std::int64_t now);
  /// Cancels every job not replied to yet and marks it replied, so that no result of it is
  /// sent (the controller answered for it already). Returns how many.
  std::size_t drop_all();

 private:
  std::int64_t grace_us_;
  std::unordered_map<std::string, std::shared_ptr<Job>> jobs_;
  std::unordered_set<std::string> limited_;
  std::unordered_map<std::string, std::int64_t> overdue_;  // msg_id -> when to give up
};

}  // namespace ipp::engine
