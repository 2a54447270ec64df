// Load balancing and fault tolerance on a real cluster: schemes, flags, dependencies,
// retries, priorities, abort, cancel, time limits, and an engine killed mid-map.
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <set>

#include <gtest/gtest.h>

#include "ipp/client.hpp"
#include "support/cluster.hpp"

namespace ipp {
namespace {

using namespace std::chrono_literals;

class SchedulingTest : public test::Cluster {
 protected:
  void start_with(int engines, int threads, const std::vector<std::string>& controller_args = {}) {
    start(engines, threads, controller_args);
    rc_ = std::make_unique<Client>(ClientOptions{.profile_dir = dir_.path()});
    rc_->push_plugin(test::test_plugin("sched"));
    rc_->push_plugin(test::plugin("arith"));
  }
  LoadBalancedView lb(TaskFlags flags = {}) const {
    return rc_->load_balanced_view().with(std::move(flags));
  }
  /// Waits until engine `id`'s namespace binds `name`.
  void wait_for_name(std::int64_t id, const std::string& name) {
    const auto deadline = std::chrono::steady_clock::now() + 30s;
    while (true) {
      try {
        (void)(*rc_)[id].pull(name);
        return;
      } catch (const RemoteError&) {
        ASSERT_LT(std::chrono::steady_clock::now(), deadline) << name << " never bound";
        std::this_thread::sleep_for(5ms);
      }
    }
  }
  std::unique_ptr<Client> rc_;
};

// ---- schemes --------------------------------------------------------------------------------

class SchemeTest : public SchedulingTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(SchemeTest, RunsABalancedMapOnEveryEngine) {
  start_with(2, 2, {"--scheme", GetParam()});
  AsyncResult r = lb().map_async("tag", {Range{0, 200}}, 1);
  const Value out = r.get(60s);
  ASSERT_EQ(out.size(), 200u);
  std::set<std::int64_t> engines;
  for (std::int64_t i = 0; i < 200; ++i) {
    ASSERT_EQ(out[i][0].as_int(), i);
    engines.insert(out[i][1].as_int());
  }
  EXPECT_EQ(engines, (std::set<std::int64_t>{0, 1})) << GetParam();
}

INSTANTIATE_TEST_SUITE_P(Schemes, SchemeTest,
                         ::testing::Values("leastload", "lru", "plainrandom", "twobin",
                                           "weighted"));

// More messages in flight than ZeroMQ queues by default (1000 per pipe): with no limit on
// engines (--hwm 0) the balanced queue hands every task on at once, and direct tasks always
// go straight to their engine. None may be refused or dropped on the way.
TEST_F(SchedulingTest, ThousandsInFlightAreNeitherRefusedNorDropped) {
  start_with(2, 1, {"--hwm", "0"});
  constexpr int kTasks = 5000;
  std::vector<AsyncResult> balanced, direct;
  balanced.reserve(kTasks);
  direct.reserve(kTasks);
  DirectView e0 = (*rc_)[0];
  for (int i = 0; i < kTasks; ++i) {
    balanced.push_back(lb().apply_async("add", {i, 1}));
    direct.push_back(e0.apply_async("add", {i, 2}));
  }
  std::set<std::int64_t> engines;
  for (int i = 0; i < kTasks; ++i) {
    ASSERT_EQ(balanced[static_cast<std::size_t>(i)].get(60s).as_int(), i + 1) << i;
    ASSERT_EQ(direct[static_cast<std::size_t>(i)].get(60s).as_int(), i + 2) << i;
    engines.insert(balanced[static_cast<std::size_t>(i)].metadata().at(0).engine);
  }
  EXPECT_EQ(engines, (std::set<std::int64_t>{0, 1}));
}

TEST(SchedulerOptions, AnUnknownSchemeStopsTheControllerWithItsName) {
  test::TempDir dir;
  const auto log = dir / "out.txt";
  const std::string cmd = test::binary("ippcontroller") + " --profile-dir '" + dir.path().string() +
                          "' --scheme fastest > '" + log.string() + "' 2>&1";
  EXPECT_NE(std::system(cmd.c_str()), 0);
  std::ifstream in(log);
  const std::string out((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(out.find("fastest"), std::string::npos) << out;
  EXPECT_NE(out.find("leastload"), std::string::npos) << out;
}

// ---- flags ----------------------------------------------------------------------------------

TEST_F(SchedulingTest, RetriesLandOnADifferentEngine) {
  start_with(2, 2);
  // fail_on(0) fails on engine 0: without retries some of these fail, with one retry each
  // ends on engine 1.
  std::vector<AsyncResult> plain, retried;
  for (int i = 0; i < 8; ++i)
    plain.push_back(lb().apply_async("fail_on", {0}));
  for (int i = 0; i < 8; ++i)
    retried.push_back(lb({.retries = 1}).apply_async("fail_on", {0}));
  int failed = 0;
  for (auto& r : plain) {
    r.wait(30s);
    if (!r.successful()) ++failed;
  }
  EXPECT_GT(failed, 0) << "no plain task reached engine 0";
  for (auto& r : retried)
    EXPECT_EQ(r.get(30s), Value(1));
  // A retried task reports the engine that finally ran it.
  for (auto& r : retried)
    EXPECT_EQ(r.metadata()[0].engine, 1);
}

TEST_F(SchedulingTest, HigherPriorityRunsFirst) {
  start_with(1, 1);
  // The blocker outranks every other task: it runs first even when the scheduler reads it in
  // one batch with the others, and the rest queue behind it in priority order.
  AsyncResult blocker = lb({.priority = 100}).apply_async("stubborn", {0.5});
  const std::vector<int> priorities{1, 5, 3, 5, 0, -2};
  std::vector<AsyncResult> rs;
  for (std::size_t i = 0; i < priorities.size(); ++i)
    rs.push_back(lb({.priority = priorities[i]}).apply_async("tag", {static_cast<int>(i)}));
  blocker.get(30s);
  std::vector<std::pair<std::int64_t, int>> by_start;
  for (std::size_t i = 0; i < rs.size(); ++i) {
    rs[i].get(30s);
    by_start.emplace_back(rs[i].metadata()[0].started, static_cast<int>(i));
  }
  std::sort(by_start.begin(), by_start.end());
  std::vector<int> order;
  for (const auto& [started, i] : by_start)
    order.push_back(i);
  EXPECT_EQ(order, (std::vector<int>{1, 3, 2, 0, 4, 5}));
}

TEST_F(SchedulingTest, TargetsRestrictTheEngines) {
  start_with(3, 2);
  for (int i = 0; i < 10; ++i)
    EXPECT_EQ(lb({.targets = {2}}).apply("tag", {i})[1], Value(2));
  try {
    lb({.targets = {7}}).apply("tag", {1});
    FAIL() << "no ImpossibleDependency";
  } catch (const ImpossibleDependency& e) {
    EXPECT_NE(std::string(e.what()).find("[7]"), std::string::npos) << e.what();
  }
}

TEST_F(SchedulingTest, AfterAndFollowDependencies) {
  start_with(2, 2);
  AsyncResult a = lb({.targets = {1}}).apply_async("stubborn", {0.3});
  AsyncResult b = lb({.follow = a}).apply_async("tag", {2});
  AsyncResult c = lb({.after = {a, b}}).apply_async("tag", {3});
  EXPECT_EQ(b.get(30s)[1], Value(1));  // where a ran
  c.get(30s);
  EXPECT_GE(c.metadata()[0].started, a.metadata()[0].completed);
  EXPECT_GE(c.metadata()[0].started, b.metadata()[0].completed);

  AsyncResult bad = lb({.targets = {0}}).apply_async("fail_on", {0});
  AsyncResult on_success = lb({.after = bad}).apply_async("tag", {4});
  AsyncResult on_failure = lb({.after = Dependency(bad).on_failure()}).apply_async("tag", {5});
  AsyncResult on_finish = lb({.after = Dependency(bad).on_finish()}).apply_async("tag", {6});
  AsyncResult any = lb({.after = Dependency{bad, a}.any()}).apply_async("tag", {7});
  EXPECT_THROW(on_success.get(30s), ImpossibleDependency);
  EXPECT_EQ(on_failure.get(30s)[0], Value(5));
  EXPECT_EQ(on_finish.get(30s)[0], Value(6));
  EXPECT_EQ(any.get(30s)[0], Value(7));
  try {
    lb({.after = Dependency(std::vector<std::string>{"0123456789abcdef"})}).apply("tag", {1});
    FAIL() << "no InvalidDependency";
  } catch (const InvalidDependency& e) {
    EXPECT_NE(std::string(e.what()).find("0123456789abcdef"), std::string::npos) << e.what();
  }
  // A dependency that waits too long times out.
  AsyncResult slow = lb({.targets = {0}}).apply_async("stubborn", {2.0});
  EXPECT_THROW(lb({.timeout = 200ms, .after = slow}).apply("tag", {1}), TaskTimeout);
  slow.get(30s);
}

// ---- stopping work --------------------------------------------------------------------------

TEST_F(SchedulingTest, AbortRemovesQueuedTasks) {
  start_with(1, 1);
  // The blocker outranks every other task: it runs first even when the scheduler reads it in
  // one batch with the others, and the rest queue behind it in priority order.
  AsyncResult blocker = lb({.priority = 100}).apply_async("stubborn", {0.5});
  AsyncResult queued = lb().apply_async("tag", {1});
  AsyncResult also = lb().apply_async("tag", {2});
  AsyncResult kept = lb().apply_async("tag", {3});
  const ControlSummary s = rc_->abort(queued.msg_ids());
  EXPECT_EQ(s.removed, queued.msg_ids());
  also.abort();
  EXPECT_THROW(queued.get(30s), TaskAborted);
  EXPECT_THROW(also.get(30s), TaskAborted);
  EXPECT_EQ(blocker.get(30s), Value("done"));  // running: untouched
  EXPECT_EQ(kept.get(30s)[0], Value(3));
  // Finished tasks are not pending any more.
  EXPECT_EQ(rc_->abort(kept.msg_ids()).not_pending, kept.msg_ids());
  // Direct tasks waiting on their engine are aborted there.
  AsyncResult busy = (*rc_)[0].apply_async("stubborn", {0.5});
  AsyncResult waiting = (*rc_)[0].apply_async("tag", {4});
  waiting.abort();
  try {
    waiting.get(30s);
    FAIL() << "no TaskAborted";
  } catch (const TaskAborted& e) {
    EXPECT_NE(std::string(e.what()).find("aborted before it ran"), std::string::npos);
  }
  EXPECT_EQ(busy.get(30s), Value("done"));
}

TEST_F(SchedulingTest, CancelReachesRunningTasks) {
  start_with(1, 2);
  // A task that looks at ipp::Context::cancelled() stops early...
  AsyncResult polite = (*rc_)[0].apply_async("until_cancelled", {60.0});
  wait_for_name(0, "started");
  polite.cancel();
  try {
    polite.get(30s);
    FAIL() << "no TaskCancelled";
  } catch (const TaskCancelled& e) {
    EXPECT_NE(std::string(e.what()).find("cancelled while it ran"), std::string::npos) << e.what();
  }
  wait_for_name(0, "saw_cancel");
  EXPECT_EQ((*rc_)[0].pull("saw_cancel"), Value(true));
  // ...one that ignores it is reported cancelled when it returns.
  AsyncResult stubborn = lb().apply_async("stubborn", {0.5});
  std::this_thread::sleep_for(100ms);
  rc_->cancel(stubborn.msg_ids());
  EXPECT_THROW(stubborn.get(30s), TaskCancelled);
  EXPECT_EQ((*rc_)[0].apply("tag", {1})[0], Value(1));  // the engine goes on
}

TEST_F(SchedulingTest, TimeLimitsReportTaskTimeoutAndCancel) {
  start_with(1, 2);
  (*rc_)[0].execute("saw_cancel = None").get(30s);
  try {
    (*rc_)[0].with({.time_limit = 300ms}).apply("until_cancelled", {60.0});
    FAIL() << "no TaskTimeout";
  } catch (const TaskTimeout& e) {
    EXPECT_NE(std::string(e.what()).find("time limit of 300 ms"), std::string::npos) << e.what();
  }
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while ((*rc_)[0].pull("saw_cancel") != Value(true))
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "the task was not cancelled";
  EXPECT_THROW(lb({.time_limit = 200ms}).apply("stubborn", {1.0}), TaskTimeout);
  EXPECT_EQ(lb({.time_limit = 5000ms}).apply("tag", {9})[0], Value(9));  // within its limit
  EXPECT_THROW((void)(*rc_)[0].with({.retries = 1}), UsageError);
}

// ---- engines that die -----------------------------------------------------------------------

TEST_F(SchedulingTest, AnEngineKilledDuringABalancedMapWithRetriesLosesNothing) {
  start_with(3, 2);
  const std::int64_t n = 1000;
  AsyncResult r =
      lb({.retries = 1})
          .map_async("mul_slowly",
                     {Range{0, n}, std::vector<std::int64_t>(n, 3), std::vector<double>(n, 0.002)},
                     1);
  // Once a tenth is done, kill an engine outright.
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (true) {
    std::size_t received = 0;
    for (const auto& m : r.metadata())
      received += m.received != 0 ? 1 : 0;
    if (received >= static_cast<std::size_t>(n / 10)) break;
    ASSERT_LT(std::chrono::steady_clock::now(), deadline);
    std::this_thread::sleep_for(2ms);
  }
  ASSERT_FALSE(r.ready());
  engine_process(1).signal(SIGKILL);
  const Value out = r.get(120s);
  ASSERT_EQ(out.size(), static_cast<std::size_t>(n));
  const auto values = out.as_array().view<std::int64_t>();
  for (std::int64_t i = 0; i < n; ++i)
    ASSERT_EQ(values[i], 3 * i) << i;
  std::set<std::int64_t> after;
  for (const auto& m : r.metadata())
    after.insert(m.engine);
  EXPECT_TRUE(after.count(0) && after.count(2));
  EXPECT_EQ(rc_->ids(), (std::vector<std::int64_t>{0, 2}));
}

}  // namespace
}  // namespace ipp
