// The pool's hand-off of tasks to threads that wait for work, checked by rendezvous and by
// order rather than by timing.
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <latch>
#include <mutex>
#include <string>
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

// lead(): a task submitted from a turn, while a thread waits for work, runs on the thread
// that took the turn; the turns go on elsewhere meanwhile, and never two at once.
TEST(Executor, ATaskSubmittedFromATurnRunsWhereTheTurnWas) {
  Executor pool(2);
  std::atomic<int> in_turn{0};
  std::atomic<bool> overlapped{false};
  std::atomic<int> done{0}, here{0};
  int submitted = 0;
  constexpr int kTasks = 50;
  pool.lead([&] {
    if (in_turn.fetch_add(1) != 0) overlapped = true;
    if (done.load() == submitted && submitted < kTasks) {  // one at a time: threads wait
      ++submitted;
      const auto turn_thread = std::this_thread::get_id();
      pool.submit([&, turn_thread] {
        if (std::this_thread::get_id() == turn_thread) ++here;
        ++done;
      });
    } else {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    in_turn.fetch_sub(1);
    return done.load() < kTasks;
  });
  pool.wait_idle();
  EXPECT_FALSE(overlapped.load());
  EXPECT_EQ(done.load(), kTasks);
  // The first finds no thread waiting; most later ones do (a thread waits kPark for work).
  EXPECT_GE(here.load(), 1);
}

// Tasks submitted together in one turn keep their order and all run; the turns do not stop
// while every thread of the pool runs a task (an engine still reads cancel requests then).
TEST(Executor, TurnsGoOnWhileEveryThreadRunsATask) {
  Executor pool(2);
  std::latch release(1);
  std::atomic<int> started{0}, ran{0};
  std::vector<int> order;
  std::mutex order_mutex;
  int turns_while_busy = 0;
  std::size_t started_at_release = 0;
  bool submitted = false;
  pool.lead([&] {
    if (!submitted) {
      submitted = true;
      for (int i = 0; i < 4; ++i) {
        pool.submit([&, i] {
          {
            std::lock_guard lock(order_mutex);
            order.push_back(i);
          }
          if (i < 2) {
            ++started;
            release.wait();
          }
          ++ran;
        });
      }
      return true;
    }
    if (started.load() == 2 && turns_while_busy < 5 && ++turns_while_busy == 5) {
      {
        std::lock_guard lock(order_mutex);
        started_at_release = order.size();
      }
      release.count_down();
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    return ran.load() < 4;
  });
  pool.wait_idle();
  EXPECT_EQ(ran.load(), 4);
  EXPECT_EQ(turns_while_busy, 5);
  EXPECT_EQ(started_at_release, 2u);  // no more tasks at once than the pool's threads
  ASSERT_EQ(order.size(), 4u);
  EXPECT_EQ(order[0] + order[1], 1);  // the two blocking ones started first
}

// Many turns, bursts of tasks from them and from other threads: every task runs once.
TEST(Executor, TurnsAndOutsideSubmittersGetEveryTask) {
  Executor pool(2);
  std::atomic<int> ran{0};
  std::atomic<bool> outside_done{false};
  std::thread outside([&] {
    for (int i = 0; i < 3000; ++i) {
      pool.submit([&] { ++ran; });
      if (i % 97 == 0) std::this_thread::sleep_for(std::chrono::microseconds(300));
    }
    outside_done = true;
  });
  int turns = 0;
  pool.lead([&] {
    ++turns;
    for (int i = 0; i < turns % 4; ++i)
      pool.submit([&] { ++ran; });
    if (turns % 50 == 0) std::this_thread::sleep_for(std::chrono::microseconds(500));
    return turns < 3000 || !outside_done.load();
  });
  outside.join();
  pool.wait_idle();
  int expected = 3000;
  for (int t = 1; t <= turns; ++t)
    expected += t % 4;
  EXPECT_EQ(ran.load(), expected);
}

// Several tasks taken in by one turn all go the usual way, in their order: none of them runs
// on the turn's thread after the others (which would start it last), even with threads
// waiting for work.
TEST(Executor, ATurnThatTakesInSeveralTasksRunsNoneOfThemItself) {
  Executor pool(3);
  for (int i = 0; i < 3; ++i)  // the pool's threads now wait for work
    pool.submit([] {});
  pool.wait_idle();
  std::atomic<int> ran{0}, on_turn_thread{0};
  bool submitted = false;
  pool.lead([&] {
    if (!submitted) {
      submitted = true;
      const auto turn_thread = std::this_thread::get_id();
      for (int i = 0; i < 3; ++i) {
        pool.submit([&, turn_thread] {
          if (std::this_thread::get_id() == turn_thread) ++on_turn_thread;
          ++ran;
        });
      }
      return true;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    return ran.load() < 3;
  });
  pool.wait_idle();
  EXPECT_EQ(ran.load(), 3);
  EXPECT_EQ(on_turn_thread.load(), 0);
}

/// Voluntary context switches of every thread of this process so far: each is a thread that
/// blocked (and, for a pool thread that waits for work, was woken after).
long voluntary_switches() {
  long total = 0;
  for (const auto& t : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream status(t.path() / "status");
    for (std::string line; std::getline(status, line);) {
      if (line.rfind("voluntary_ctxt_switches:", 0) == 0) total += std::stol(line.substr(24));
    }
  }
  return total;
}

/// Both threads of `pool` have run at once, and now wait for work.
void warm_up(Executor& pool) {
  Rendezvous both(2);
  for (int i = 0; i < 2; ++i)
    pool.submit([&] { (void)both.arrive(); });
  pool.wait_idle();
}

/// Tasks submitted one at a time from turns that never block (they spin), each while the
/// other thread waits for work. Returns how many ran on their turn's thread, and how often a
/// thread of the process blocked meanwhile.
std::pair<int, long> tasks_from_spinning_turns(bool quick) {
  Executor pool(2);
  warm_up(pool);
  constexpr int kTasks = 40;
  std::atomic<int> done{0}, on_turn_thread{0};
  int submitted = 0;
  const long before = voluntary_switches();
  pool.lead([&] {
    if (done.load() == submitted && submitted < kTasks) {
      ++submitted;
      pool.submit(
          [&, me = std::this_thread::get_id()] {
            if (std::this_thread::get_id() == me) ++on_turn_thread;
            ++done;
          },
          quick);
    } else {
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(100);
      while (std::chrono::steady_clock::now() < until) {
      }
    }
    return done.load() < kTasks;
  });
  const long switches = voluntary_switches() - before;
  pool.wait_idle();
  return {on_turn_thread.load(), switches};
}

// A quick task from a turn runs on the turn's thread and wakes nobody: the turns go on on
// that thread after it. Any other task there wakes the waiting thread to take the turns.
TEST(Executor, AQuickTaskFromATurnWakesNobody) {
  const auto [quick_here, quick_switches] = tasks_from_spinning_turns(true);
  const auto [here, switches] = tasks_from_spinning_turns(false);
  EXPECT_GT(quick_here, 20);
  EXPECT_GT(here, 5);
  // Woken and blocking again: about one switch per task without `quick`, next to none with it
  // (lead() itself blocks once, and a waiting thread times out every kPark).
  EXPECT_GE(switches, here / 2);
  EXPECT_LT(quick_switches, switches / 2) << quick_switches << " vs " << switches;
}

// A task submitted as quick that runs long after all does not stop the turns: a thread that
// waits for work takes them when its wait ends.
TEST(Executor, AQuickTaskThatRunsLongDoesNotStopTheTurns) {
  Executor pool(2);
  warm_up(pool);
  std::latch release(1);
  std::atomic<bool> released{false};
  auto release_once = [&] {
    if (!released.exchange(true)) release.count_down();
  };
  std::atomic<bool> on_turn_thread{false}, turned_meanwhile{false}, finished{false};
  std::atomic<std::thread::id> blocked_thread;
  // Fails the test instead of hanging it if the turns never come back.
  std::thread deadline([&] {
    for (int i = 0; i < 2000 && !finished.load(); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    release_once();
  });
  bool submitted = false;
  pool.lead([&] {
    const auto me = std::this_thread::get_id();
    if (!submitted) {
      submitted = true;
      pool.submit(
          [&, me] {
            if (std::this_thread::get_id() == me) {
              blocked_thread = me;
              on_turn_thread = true;
            }
            release.wait();
            finished = true;
          },
          true);
      return true;
    }
    if (on_turn_thread.load() && !released.load() && me != blocked_thread.load()) {
      turned_meanwhile = true;  // a turn on another thread while the task is held
      release_once();
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
    return !finished.load();
  });
  pool.wait_idle();
  deadline.join();
  EXPECT_TRUE(finished.load());
  EXPECT_TRUE(on_turn_thread.load()) << "the quick task did not run on its turn's thread";
  EXPECT_TRUE(turned_meanwhile.load());
}

}  // namespace
}  // namespace ipp
