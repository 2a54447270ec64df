#pragma once

#include <chrono>
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
/// A thread that finishes a task and finds nothing queued waits up to kPark for the next one,
/// blocked, before it goes back to oneTBB: a task that comes within that time starts on it at
/// once, instead of waiting for oneTBB to wake a worker; and the worker does not spin and
/// yield in oneTBB's scheduler meanwhile, taking a core from the threads that bring that task.
///
/// lead() gives the pool a loop that receives work (an engine's socket turns): its turns run
/// on one pool thread at a time, and a task submitted during a turn, while another thread
/// waits for work, runs on the thread that made the turn, at once; the waiting thread is woken
/// to take the next turns meanwhile. A task that comes in over the network thus starts without
/// waiting for a thread to wake. A task submitted as quick (one expected to take a fraction of
/// a millisecond) wakes nobody: the thread that made the turn runs it and then takes the next
/// turns itself. Should it run long after all, a waiting thread takes the turns when its wait
/// of kPark ends, so the turns stop for at most about that long.
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
  /// `quick`: `fn` is expected to finish within a fraction of a millisecond (see lead()).
  void submit(std::function<void()> fn, bool quick = false);
  /// Blocks until nothing submitted is queued or running.
  void wait_idle();
  /// Runs `turn` on the pool, on one thread at a time, again and again until it returns
  /// false; returns then. `turn` must not throw, and must not block for long (it polls with a
  /// time-out). While a turn runs, the pool has a thread more than `threads`, so that
  /// `threads` tasks still run at once. One lead() at a time.
  void lead(std::function<bool()> turn);
  /// Runs `fn` inside the arena on the calling thread (for nested parallel algorithms).
  /// Threads waiting for tasks are sent back to oneTBB first, so that they can take part.
  template <class F>
  decltype(auto) run(F&& fn) {
    release_parked();
    return arena_.execute(std::forward<F>(fn));
  }
  [[nodiscard]] int threads() const noexcept { return threads_; }
  /// Tasks submitted and not yet finished.
  [[nodiscard]] std::size_t pending() const;
  /// Tasks submitted and not started yet.
  [[nodiscard]] std::size_t queued() const;

  /// How long a thread that ran out of tasks waits for the next before it returns to oneTBB.
  static constexpr std::chrono::milliseconds kPark{20};

 private:
  void drain();  // the body of every job the arena runs: queued tasks, oldest first
  void release_parked();
  // Queues `fn` (the lock held); true if a job must be enqueued in the arena for it.
  bool queue_locked(std::function<void()> fn);
  // Takes turns until one yields a task of its own (returned) or the loop ends (empty).
  std::function<void()> take_turns(std::unique_lock<std::mutex>& lock);
  void wake_or_start(std::unique_lock<std::mutex>& lock);  // a thread for the turns
  [[nodiscard]] std::size_t slots() const {                // threads the pool may use now
    return static_cast<std::size_t>(threads_) + (turn_ ? 1 : 0);
  }

  int threads_;
  tbb::task_arena arena_;
  mutable std::mutex mutex_;
  std::condition_variable idle_;
  std::size_t pending_ = 0;
  std::deque<std::function<void()>> queue_;  // submitted, not started: oldest first
  // Threads in drain() waiting for a task: `parked_` are not yet spoken for; each token in
  // `wake_` is one told there is a task, each in `leave_` one told to return to oneTBB.
  std::condition_variable work_;
  std::size_t parked_ = 0;
  std::size_t wake_ = 0;
  std::size_t leave_ = 0;
  std::size_t draining_ = 0;  // threads inside drain()
  std::size_t starting_ = 0;  // jobs enqueued in the arena that have not entered drain()
  bool stopping_ = false;
  std::size_t running_ = 0;                // tasks running
  std::function<bool()>* turn_ = nullptr;  // lead()'s loop, while it goes on
  bool need_leader_ = false;               // the turns wait for a thread to take them
  bool own_quick_ = false;     // the task a turn took for its thread was submitted as quick
  bool quick_leader_ = false;  // the turns' thread runs a quick task, and takes them after
  bool led_ = false;           // the loop has ended
  std::condition_variable led_cv_;
};

}  // namespace ipp
