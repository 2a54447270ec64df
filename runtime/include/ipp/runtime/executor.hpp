#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>

#include <oneapi/tbb/task_arena.h>

namespace ipp {

/// A oneTBB arena that runs tasks with a fixed number of threads.
///
/// All threads serve submitted work (no slot is kept for a caller), so `threads` blocking
/// tasks run at once even on a machine with fewer cores; submitted work starts in submission
/// order. The destructor waits for every submitted task to finish. submit() is thread-safe.
///
///     ipp::Executor pool(4);
///     pool.submit([] { heavy(); });
///     pool.wait_idle();
class Executor {
 public:
  /// `threads` <= 0 means the number of cores.
  explicit Executor(int threads = 0);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  /// Queues `fn` to run on the pool. `fn` must not throw (an escaping exception terminates).
  void submit(std::function<void()> fn);
  /// Blocks until nothing submitted is queued or running.
  void wait_idle();
  /// Runs `fn` inside the arena on the calling thread (for nested parallel algorithms).
  template <class F>
  decltype(auto) run(F&& fn) {
    return arena_.execute(std::forward<F>(fn));
  }
  [[nodiscard]] int threads() const noexcept { return threads_; }
  /// Tasks submitted and not yet finished.
  [[nodiscard]] std::size_t pending() const;

 private:
  int threads_;
  tbb::task_arena arena_;
  mutable std::mutex mutex_;
  std::condition_variable idle_;
  std::size_t pending_ = 0;
  std::deque<std::function<void()>> queue_;  // submitted, not started: oldest first
};

}  // namespace ipp
