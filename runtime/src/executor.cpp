#include "ipp/runtime/executor.hpp"

#include <algorithm>
#include <memory>
#include <thread>

#include <oneapi/tbb/global_control.h>

namespace ipp {

namespace {

// oneTBB caps its worker pool at cores - 1 unless told otherwise, and when several
// global_control objects exist the smallest limit wins. Engines run blocking tasks (a task
// may sleep or wait on I/O), so the pool must be allowed more threads than cores: keep one
// process-wide control and only ever raise it.
void ensure_parallelism(std::size_t wanted) {
  static std::mutex mutex;
  static std::unique_ptr<tbb::global_control> control;
  static std::size_t current = 0;
  std::lock_guard lock(mutex);
  if (wanted <= current) return;
  control.reset();
  control =
      std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, wanted);
  current = wanted;
}

int resolve_threads(int threads) {
  if (threads > 0) return threads;
  return static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace

Executor::Executor(int threads)
    : threads_(resolve_threads(threads)),
      // No slot is reserved for an external thread: every slot serves queued work.
      arena_(threads_, 0) {
  // +1: the limit counts an external thread besides the workers.
  ensure_parallelism(static_cast<std::size_t>(threads_) + 1);
  arena_.initialize();
}

Executor::~Executor() {
  wait_idle();
  arena_.terminate();
}

void Executor::submit(std::function<void()> fn) {
  {
    std::lock_guard lock(mutex_);
    ++pending_;
    queue_.push_back(std::move(fn));
  }
  // oneTBB does not promise FIFO order for enqueued tasks: each enqueued runner takes the
  // oldest queued function, so work starts in the order it was submitted.
  arena_.enqueue([this] {
    std::function<void()> next;
    {
      std::lock_guard lock(mutex_);
      next = std::move(queue_.front());
      queue_.pop_front();
    }
    next();
    std::lock_guard lock(mutex_);
    if (--pending_ == 0) idle_.notify_all();
  });
}

void Executor::wait_idle() {
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return pending_ == 0; });
}

std::size_t Executor::pending() const {
  std::lock_guard lock(mutex_);
  return pending_;
}

}  // namespace ipp
