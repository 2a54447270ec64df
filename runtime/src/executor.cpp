#include "ipp/runtime/executor.hpp"

#include <algorithm>
#include <memory>
#include <thread>
#include <utility>

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

// The place for a task of its own, on the thread taking lead()'s turns while it takes one.
thread_local std::function<void()>* own_task = nullptr;

}  // namespace

Executor::Executor(int threads)
    : threads_(resolve_threads(threads)),
      // No slot is reserved for an external thread: every slot serves queued work, and one
      // more is there for the thread taking lead()'s turns.
      arena_(threads_ + 1, 0) {
  // +2: the limit counts an external thread besides the workers.
  ensure_parallelism(static_cast<std::size_t>(threads_) + 2);
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

bool Executor::queue_locked(std::function<void()> fn) {
  ++pending_;
  queue_.push_back(std::move(fn));
  if (parked_ > 0) {  // a thread waits for work: it takes this
    --parked_;
    ++wake_;
    work_.notify_one();
    return false;
  }
  // Every job takes queued tasks, oldest first, until none is left: one per thread of the
  // arena is enough. (oneTBB does not promise FIFO order for enqueued jobs; this keeps
  // submission order.)
  if (draining_ + starting_ >= slots()) return false;
  ++starting_;
  return true;
}

void Executor::submit(std::function<void()> fn, bool quick) {
  int jobs = 0;
  {
    std::lock_guard lock(mutex_);
    if (own_task != nullptr) {  // from one of lead()'s turns
      if (!*own_task) {
        // Runs on this thread after the turn, if a waiting thread can take the next turns
        // (or, for a quick task, watch them) and a task slot is free.
        if (parked_ > 0 && running_ < static_cast<std::size_t>(threads_)) {
          ++pending_;
          ++running_;
          *own_task = std::move(fn);
          own_quick_ = quick;
          return;
        }
      } else {
        // A second task in the same turn: it and every later one go the usual way, in
        // their order.
        --pending_;
        --running_;
        jobs += queue_locked(std::move(*own_task)) ? 1 : 0;
        *own_task = nullptr;
        own_task = nullptr;  // until the next turn
        own_quick_ = false;
      }
    }
    jobs += queue_locked(std::move(fn)) ? 1 : 0;
  }
  for (; jobs > 0; --jobs)
    arena_.enqueue([this] { drain(); });
}

void Executor::lead(std::function<bool()> turn) {
  std::unique_lock lock(mutex_);
  turn_ = &turn;
  led_ = false;
  need_leader_ = true;
  wake_or_start(lock);
  led_cv_.wait(lock, [this] { return led_; });
}

void Executor::wake_or_start(std::unique_lock<std::mutex>& lock) {
  if (parked_ > 0) {
    --parked_;
    ++wake_;
    work_.notify_one();
    return;
  }
  // Every slot taken: a thread that finishes its task takes the turns.
  if (draining_ + starting_ >= slots()) return;
  ++starting_;
  lock.unlock();
  arena_.enqueue([this] { drain(); });
  lock.lock();
}

std::function<void()> Executor::take_turns(std::unique_lock<std::mutex>& lock) {
  std::function<bool()>& turn = *turn_;
  std::function<void()> mine;
  lock.unlock();
  bool more = true;
  while (more && !mine) {
    own_task = &mine;
    more = turn();
  }
  own_task = nullptr;
  lock.lock();
  const bool quick = std::exchange(own_quick_, false);
  if (!more) {
    turn_ = nullptr;
    led_ = true;
    led_cv_.notify_all();
  } else if (quick) {
    // A quick task: this thread takes the next turns too, once it has run it (drain()),
    // unless a waiting thread found it still running and took them (park()).
    quick_leader_ = true;
  } else {
    // The next turns go to another thread while this one runs its task.
    need_leader_ = true;
    wake_or_start(lock);
  }
  return mine;
}

void Executor::drain() {
  // A thread waiting inside a parallel algorithm may be handed this job by oneTBB: it runs
  // what is queued but does not wait for more, nor take lead()'s turns, which would hold up
  // the algorithm.
  static thread_local int depth = 0;
  ++depth;
  struct Leave {
    ~Leave() { --depth; }
  } leave_depth;
  std::unique_lock lock(mutex_);
  --starting_;
  ++draining_;
  auto finished = [this] {
    --running_;
    if (--pending_ == 0) idle_.notify_all();
  };
  while (true) {
    if (need_leader_ && depth == 1) {
      need_leader_ = false;
      std::function<void()> mine = take_turns(lock);
      if (mine) {
        lock.unlock();
        mine();
        lock.lock();
        finished();
        if (quick_leader_) {  // nobody took the turns meanwhile: they are this thread's again
          quick_leader_ = false;
          need_leader_ = true;
        }
      }
      continue;
    }
    if (!queue_.empty() && running_ < static_cast<std::size_t>(threads_)) {
      std::function<void()> next = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
      lock.unlock();
      next();
      lock.lock();
      finished();
      continue;
    }
    if (stopping_ || depth > 1) {
      // The turns wait, and the job meant for them may have come here: start another.
      if (need_leader_ && wake_ == 0 && starting_ == 0) {
        ++starting_;
        lock.unlock();
        arena_.enqueue([this] { drain(); });
        lock.lock();
      }
      break;
    }
    ++parked_;
    work_.wait_for(lock, kPark, [this] { return wake_ > 0 || leave_ > 0 || stopping_; });
    if (wake_ > 0) {
      --wake_;
    } else {
      if (leave_ > 0)
        --leave_;
      else
        --parked_;  // timed out (or stopping) without being spoken for
      if (quick_leader_) {
        // The turns' thread still runs a task submitted as quick: the turns go on here.
        quick_leader_ = false;
        need_leader_ = true;
      }
      if (queue_.empty() && !need_leader_) break;
    }
    // The task (or the turns) may have gone to a thread that was running: look again.
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

std::size_t Executor::queued() const {
  std::lock_guard lock(mutex_);
  return queue_.size();
}

}  // namespace ipp
