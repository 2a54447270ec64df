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
  std::unique_lock lock(mutex_);
  idle_.wait(lock, [this] { return pending_ == 0; });
  stopping_ = true;
  work_.notify_all();
  idle_.wait(lock, [this] { return draining_ == 0 && starting_ == 0; });
  lock.unlock();
  arena_.terminate();
}

void Executor::submit(std::function<void()> fn) {
  {
    std::lock_guard lock(mutex_);
    ++pending_;
    queue_.push_back(std::move(fn));
    if (parked_ > 0) {  // a thread waits for work: it takes this
      --parked_;
      ++wake_;
      work_.notify_one();
      return;
    }
    // Every job takes queued tasks, oldest first, until none is left: one per thread of the
    // arena is enough. (oneTBB does not promise FIFO order for enqueued jobs; this keeps
    // submission order.)
    if (draining_ + starting_ >= static_cast<std::size_t>(threads_)) return;
    ++starting_;
  }
  arena_.enqueue([this] { drain(); });
}

void Executor::drain() {
  // A thread waiting inside a parallel algorithm may be handed this job by oneTBB: it runs
  // what is queued but does not wait for more, which would hold up the algorithm.
  static thread_local int depth = 0;
  ++depth;
  struct Leave {
    ~Leave() { --depth; }
  } leave_depth;
  std::unique_lock lock(mutex_);
  --starting_;
  ++draining_;
  while (true) {
    if (queue_.empty()) {
      if (stopping_ || depth > 1) break;
      ++parked_;
      work_.wait_for(lock, kPark, [this] { return wake_ > 0 || leave_ > 0 || stopping_; });
      if (wake_ > 0) {
        --wake_;
      } else if (leave_ > 0) {
        --leave_;
        if (queue_.empty()) break;
      } else {
        --parked_;  // timed out (or stopping) without being spoken for
        if (queue_.empty()) break;
      }
      continue;  // the task may have gone to a thread that was running: look again
    }
    std::function<void()> next = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    next();
    lock.lock();
    if (--pending_ == 0) idle_.notify_all();
  }
  // Leaves with the queue empty, under the lock: a later submit() sees one job fewer.
  if (--draining_ == 0 && starting_ == 0) idle_.notify_all();
}

void Executor::release_parked() {
  std::lock_guard lock(mutex_);
  if (parked_ == 0) return;
  leave_ += parked_;
  parked_ = 0;
  work_.notify_all();
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
