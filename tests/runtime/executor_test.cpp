// The pool's hand-off of tasks to threads that wait for work, checked by rendezvous and by
// order rather than by timing.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <latch>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>

#include "ipp/runtime/executor.hpp"

namespace ipp {
namespace {

/// True once `n` callers are inside at the same time; false if that does not happen within
/// a generous limit (so a missing thread fails the test instead of hanging it).
class Rendezvous {
 public:
  explicit Rendezvous(int n) : n_(n) {}
  bool arrive() {
    std::unique_lock lock(mutex_);
    if (++inside_ >= n_) cv_.notify_all();
    return cv_.wait_for(lock, std::chrono::seconds(20), [&] { return inside_ >= n_; });
  }

 private:
  int n_;
  int inside_ = 0;
  std::mutex mutex_;
  std::condition_variable cv_;
};

// After a first round, the pool's threads wait for work; a second round must still reach
// every one of them, not one thread taking the tasks in turn.
TEST(Executor, TasksAfterAPauseStillRunOnEveryThread) {
  constexpr int kThreads = 3;
  Executor pool(kThreads);
  for (int round = 0; round < 3; ++round) {
    Rendezvous meet(kThreads);
    std::atomic<int> met{0};
    for (int i = 0; i < kThreads; ++i)
      pool.submit([&] { met += meet.arrive() ? 1 : 0; });
    pool.wait_idle();
    EXPECT_EQ(met.load(), kThreads) << "round " << round;
  }
}

TEST(Executor, StartsTasksInSubmissionOrder) {
  Executor pool(1);
  std::vector<int> order;
  std::mutex mutex;
  for (int burst = 0; burst < 5; ++burst) {
    for (int i = 0; i < 200; ++i) {
      pool.submit([&, v = burst * 200 + i] {
        std::lock_guard lock(mutex);
        order.push_back(v);
      });
    }
    if (burst % 2 == 0) pool.wait_idle();  // the thread then waits for work
  }
  pool.wait_idle();
  ASSERT_EQ(order.size(), 1000u);
  for (int i = 0; i < 1000; ++i)
    ASSERT_EQ(order[static_cast<std::size_t>(i)], i);
}

// A parallel algorithm inside a task gets the threads that wait for work: they go back to
// oneTBB and take part.
TEST(Executor, AParallelAlgorithmGetsTheThreadsThatWait) {
  Executor pool(2);
  pool.submit([] {});
  pool.submit([] {});
  pool.wait_idle();
  std::atomic<bool> overlapped{false};
  std::latch done(1);
  pool.submit([&] {
    Rendezvous meet(2);
    std::atomic<int> met{0};
    pool.run([&] {
      tbb::parallel_for(
          tbb::blocked_range<int>(0, 2),
          [&](const tbb::blocked_range<int>&) { met += meet.arrive() ? 1 : 0; },
          tbb::simple_partitioner());
    });
    overlapped = met.load() == 2;
    done.count_down();
  });
  done.wait();
  EXPECT_TRUE(overlapped.load());
}

TEST(Executor, ManySubmittersWithPausesGetEveryTask) {
  Executor pool(2);
  std::atomic<int> ran{0};
  std::vector<std::thread> submitters;
  for (int s = 0; s < 4; ++s) {
    submitters.emplace_back([&, s] {
      for (int i = 0; i < 2000; ++i) {
        pool.submit([&] { ++ran; });
        if (i % (100 + s) == 0) std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
  }
  for (auto& t : submitters)
    t.join();
  pool.wait_idle();
  EXPECT_EQ(ran.load(), 8000);
}

// Destroyed while its threads wait for work: it returns (they are told to leave) and nothing
// touches the pool afterwards (the sanitized build checks the latter).
TEST(Executor, DestroyedWhileItsThreadsWaitForWork) {
  for (int i = 0; i < 20; ++i) {
    auto pool = std::make_unique<Executor>(2);
    std::atomic<int> ran{0};
    pool->submit([&] { ++ran; });
    pool->submit([&] { ++ran; });
    pool->wait_idle();
    pool.reset();
    EXPECT_EQ(ran.load(), 2);
  }
}

}  // namespace
}  // namespace ipp
