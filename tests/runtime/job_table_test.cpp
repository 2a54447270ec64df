// The engine's table of tasks, fed by hand with a clock in microseconds: aborts and cancels,
// time limits and the grace after them, tasks dropped for a controller that answered for them.
#include "engine/job_table.hpp"

#include <gtest/gtest.h>

namespace ipp::engine {
namespace {

std::shared_ptr<Job> job(const std::string& id, std::int64_t limit_ms = 0,
                         std::int64_t started_us = 0) {
  auto j = std::make_shared<Job>();
  j->request.msg_id = id;
  j->request.task = "t_" + id;
  j->time_limit_ms = limit_ms;
  j->control->started_us.store(started_us);
  return j;
}

TEST(JobTable, AbortStopsOnlyWhatHasNotStartedCancelStopsBoth) {
  JobTable t(std::chrono::seconds(10));
  auto queued = job("q"), running = job("r", 0, 1000);
  t.add(queued);
  t.add(running);
  t.control({"q", "r", "unknown"}, /*cancel=*/false);
  EXPECT_EQ(queued->verdict.load(), Job::aborted);
  EXPECT_TRUE(queued->control->cancelled.load());
  EXPECT_EQ(running->verdict.load(), Job::none) << "an abort comes too late for it";
  t.control({"r"}, /*cancel=*/true);
  EXPECT_EQ(running->verdict.load(), Job::cancelled);
  EXPECT_TRUE(running->control->cancelled.load());
}

TEST(JobTable, ATaskPastItsLimitExpiresOnceAndOnePastTheGraceToo) {
  JobTable t(std::chrono::milliseconds(500));
  auto limited = job("a", 100, 1'000'000), free = job("b", 0, 1'000'000),
       waiting = job("c", 100, 0);
  for (auto& j : {limited, free, waiting})
    t.add(j);
  EXPECT_TRUE(t.timed());
  EXPECT_TRUE(t.expire(1'050'000).empty()) << "50 ms in";
  const auto expired = t.expire(1'100'000);
  ASSERT_EQ(expired.size(), 1u);
  EXPECT_EQ(expired[0], limited);
  EXPECT_EQ(limited->verdict.load(), Job::timed_out);
  EXPECT_TRUE(limited->control->cancelled.load());
  EXPECT_TRUE(limited->replied.load()) << "its TaskTimeout is the one reply";
  EXPECT_TRUE(t.expire(2'000'000).empty()) << "once";
  EXPECT_EQ(t.past_grace(1'500'000), nullptr);
  EXPECT_EQ(t.past_grace(1'600'000), limited) << "still running 500 ms after its limit";
  t.forget({"a"});  // it returned at last
  EXPECT_EQ(t.past_grace(9'000'000), nullptr);
}

TEST(JobTable, ATaskThatFinishedFirstDoesNotExpire) {
  JobTable t(std::chrono::seconds(1));
  auto done = job("a", 100, 1'000'000);
  t.add(done);
  done->replied.store(true);  // its reply went before the limit was looked at
  EXPECT_TRUE(t.expire(5'000'000).empty());
  EXPECT_EQ(t.past_grace(9'000'000), nullptr);
}

TEST(JobTable, DroppingCancelsEveryTaskNotAnsweredYet) {
  JobTable t(std::chrono::seconds(1));
  auto a = job("a"), b = job("b", 0, 1000), answered = job("c");
  answered->replied.store(true);
  for (auto& j : {a, b, answered})
    t.add(j);
  EXPECT_EQ(t.drop_all(), 2u);
  for (auto& j : {a, b}) {
    EXPECT_TRUE(j->replied.load()) << "no result of it is sent";
    EXPECT_EQ(j->verdict.load(), Job::cancelled);
    EXPECT_TRUE(j->control->cancelled.load());
  }
  EXPECT_FALSE(t.empty());
  t.forget({"a", "b", "c"});
  EXPECT_TRUE(t.empty());
}

}  // namespace
}  // namespace ipp::engine
