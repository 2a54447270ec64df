// The load-balanced scheduler's decisions, with a fake clock and a seeded generator: schemes,
// capacity and hwm, priorities, dependencies, retries, time-outs, aborts and dead engines.

#include "balancer.hpp"

#include <gtest/gtest.h>

#include <map>
#include <set>

#include <fmt/format.h>

namespace ipp::sched {
namespace {

using namespace std::chrono_literals;

const Clock::time_point t0{};

/// Tests name tasks "a", "b", ...: each name stands for the id whose hex digits spell its
/// bytes, padded with zeros.
TaskId id_of(const std::string& name) {
  std::string hex;
  for (unsigned char c : name.substr(0, 16))
    hex += fmt::format("{:02x}", c);
  hex.resize(32, '0');
  return *TaskId::parse(hex);
}
std::string name_of(TaskId id) {
  const std::string hex = id.str();
  std::string name;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    const char c = static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16));
    if (c == 0) break;
    name.push_back(c);
  }
  return name;
}

net::Dependency dep(std::vector<std::string> names, bool all = true, bool success = true,
                    bool failure = false) {
  std::vector<std::string> ids;
  for (const auto& n : names)
    ids.push_back(id_of(n).str());
  return net::Dependency{std::move(ids), all, success, failure};
}

struct Fixture {
  explicit Fixture(BalancerOptions o = {}) : b(o) {}
  struct Sent {
    std::string msg_id;
    std::int64_t engine = -1;
  };
  Balancer b;
  std::vector<Sent> sent;
  std::map<std::string, ErrorRecord> failed;

  void submit(const std::string& id, net::TaskFlags f = {},
              std::optional<Clock::duration> timeout = std::nullopt, Clock::time_point now = t0) {
    b.submit(id_of(id), "t_" + id, f, timeout, now);
    pump();
  }
  void pump() {
    b.schedule();
    for (auto& d : b.take_dispatches())
      sent.push_back({name_of(d.msg_id), d.engine});
    for (auto& f : b.take_failures())
      failed[name_of(f.msg_id)] = f.error;
  }
  /// Like submit, with a task name several ids share (what run times are learnt by).
  void submit_task(const std::string& id, const std::string& task, net::TaskFlags f = {}) {
    b.submit(id_of(id), task, f, std::nullopt, t0);
    pump();
  }
  std::int64_t engine_of(const std::string& id) {
    for (const auto& d : sent) {
      if (d.msg_id == id) return d.engine;
    }
    return -1;
  }
  Balancer::Finish finish(const std::string& id, bool ok = true, Clock::time_point now = t0,
                          std::optional<std::chrono::microseconds> ran = std::nullopt) {
    auto r = b.finished(id_of(id), ok, now, ran);
    pump();
    return r;
  }
};

// ---- schemes --------------------------------------------------------------------------------

TEST(BalancerScheme, ParsesTheFiveNamesAndRefusesOthers) {
  for (const char* n : {"leastload", "lru", "plainrandom", "twobin", "weighted"})
    EXPECT_EQ(to_string(parse_scheme(n)), n);
  try {
    (void)parse_scheme("fastest");
    FAIL();
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("'fastest'"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("twobin"), std::string::npos);
  }
}

TEST(BalancerScheme, LeastLoadPicksTheEngineWithTheFewestTasksPerSlot) {
  Fixture f({.scheme = Scheme::leastload});
  f.b.engine_up(0, 4);
  f.b.engine_up(1, 1);
  f.submit("a");  // both idle: 0 (first, equally unused)
  f.submit("b");  // 0 at 1/4, 1 at 0/1 -> 1
  f.submit("c");  // 0 at 1/4, 1 full -> 0
  f.submit("d");
  EXPECT_EQ(f.engine_of("a"), 0);
  EXPECT_EQ(f.engine_of("b"), 1);
  EXPECT_EQ(f.engine_of("c"), 0);
  EXPECT_EQ(f.engine_of("d"), 0);
  EXPECT_EQ(f.b.load(0), 3);
  EXPECT_EQ(f.b.load(1), 1);
}

TEST(BalancerScheme, LruCyclesThroughEngines) {
  Fixture f({.scheme = Scheme::lru});
  for (int e = 0; e < 3; ++e)
    f.b.engine_up(e, 8);
  std::vector<std::int64_t> order;
  for (int i = 0; i < 6; ++i) {
    f.submit(std::to_string(i));
    order.push_back(f.engine_of(std::to_string(i)));
  }
  EXPECT_EQ(order, (std::vector<std::int64_t>{0, 1, 2, 0, 1, 2}));
  // The engine freed and used longest ago goes next, whatever its load.
  f.finish("4");
  f.submit("x");
  EXPECT_EQ(f.engine_of("x"), 0);
}

TEST(BalancerScheme, PlainRandomUsesEveryEngineAndIsReproducibleBySeed) {
  auto run = [](std::uint64_t seed) {
    Fixture f({.scheme = Scheme::plainrandom, .hwm = 0, .seed = seed});
    for (int e = 0; e < 4; ++e)
      f.b.engine_up(e, 1);
    std::vector<std::int64_t> order;
    for (int i = 0; i < 400; ++i) {
      f.submit(std::to_string(i));
      order.push_back(f.engine_of(std::to_string(i)));
    }
    return order;
  };
  const auto a = run(7);
  EXPECT_EQ(a, run(7));
  EXPECT_NE(a, run(8));
  std::map<std::int64_t, int> counts;
  for (auto e : a)
    ++counts[e];
  ASSERT_EQ(counts.size(), 4u);
  for (const auto& [e, n] : counts)
    EXPECT_GT(n, 50) << "engine " << e;  // 100 expected each
}

TEST(BalancerScheme, TwoBinPrefersTheLessRecentlyUsedOfTwo) {
  // With two engines, a draw of two distinct ones picks the less recently used: over many
  // draws the split stays close to even, unlike plain random walks.
  Fixture f({.scheme = Scheme::twobin, .hwm = 0, .seed = 3});
  f.b.engine_up(0, 1);
  f.b.engine_up(1, 1);
  int last = -1, repeats = 0;
  for (int i = 0; i < 1000; ++i) {
    f.submit(std::to_string(i));
    const int e = static_cast<int>(f.engine_of(std::to_string(i)));
    if (e == last) ++repeats;
    last = e;
  }
  // Repeating the engine just used happens only when both draws hit it: about 1 in 4.
  EXPECT_GT(repeats, 150);
  EXPECT_LT(repeats, 350);
}

TEST(BalancerScheme, WeightedFavoursTheLessLoaded) {
  Fixture f({.scheme = Scheme::weighted, .hwm = 0, .seed = 11});
  f.b.engine_up(0, 1);
  f.b.engine_up(1, 1);
  for (int i = 0; i < 10; ++i)
    f.submit("busy" + std::to_string(i), {.targets = {0}});
  ASSERT_EQ(f.b.load(0), 10);
  int to_idle = 0;
  for (int i = 0; i < 20; ++i) {
    f.submit(std::to_string(i));
    if (f.engine_of(std::to_string(i)) == 1) ++to_idle;
    f.finish(std::to_string(i));  // keep engine 1 idle
  }
  EXPECT_EQ(to_idle, 20);
}

TEST(BalancerCapacity, SlotsBoundOutstandingTasksAndTheRestWait) {
  Fixture f;
  f.b.engine_up(0, 2);
  f.submit("a");
  f.submit("b");
  f.submit("c");
  EXPECT_EQ(f.sent.size(), 2u);
  EXPECT_EQ(f.b.waiting(), 1u);
  f.finish("a");
  EXPECT_EQ(f.engine_of("c"), 0);
}

TEST(BalancerCapacity, HwmOverridesSlotsAndZeroIsUnlimited) {
  Fixture one({.hwm = 1});
  one.b.engine_up(0, 8);
  one.submit("a");
  one.submit("b");
  EXPECT_EQ(one.sent.size(), 1u);
  Fixture unlimited({.hwm = 0});
  unlimited.b.engine_up(0, 1);
  for (int i = 0; i < 100; ++i)
    unlimited.submit(std::to_string(i));
  EXPECT_EQ(unlimited.sent.size(), 100u);
}

TEST(BalancerCapacity, TasksWaitForEnginesThatArriveLater) {
  Fixture f;
  f.submit("a");
  f.submit("b", {.targets = {1}});
  EXPECT_TRUE(f.sent.empty());
  f.b.engine_up(0, 1);
  f.pump();
  EXPECT_EQ(f.engine_of("a"), 0);
  EXPECT_EQ(f.engine_of("b"), -1);
  f.b.engine_up(1, 1);
  f.pump();
  EXPECT_EQ(f.engine_of("b"), 1);
  EXPECT_TRUE(f.failed.empty());
}

TEST(BalancerCapacity, DrainingEnginesTakeNoNewTasks) {
  Fixture f;
  f.b.engine_up(0, 1);
  f.b.engine_up(1, 1);
  f.b.engine_drain(0);
  f.submit("a");
  f.submit("b");
  EXPECT_EQ(f.engine_of("a"), 1);
  EXPECT_EQ(f.engine_of("b"), -1);
}

// ---- auto capacity: short tasks go ahead, long ones never wait behind them ----------------

TEST(BalancerAutoCapacity, ShortTasksAreSentAheadWithinTheWindow) {
  Fixture f;  // hwm -1: auto; window 2 ms per slot, short <= 0.5 ms, at most 256 per slot
  f.b.engine_up(0, 2);
  f.submit_task("a0", "add");
  f.submit_task("a1", "add");
  f.submit_task("a2", "add");  // nothing known of "add" yet: one per slot
  EXPECT_EQ(f.engine_of("a2"), -1);
  f.finish("a0", true, t0, 10us);  // now it is: about 10 us
  EXPECT_EQ(f.engine_of("a2"), 0);
  for (int i = 0; i < 20; ++i)
    f.submit_task("b" + std::to_string(i), "add");
  // a1 and a2 went out before anything was known of them: until they are back, the engine
  // holds work of unknown length, and gets no more than its slots.
  EXPECT_EQ(f.b.load(0), 2);
  f.finish("a1", true, t0, 10us);
  f.finish("a2", true, t0, 10us);
  EXPECT_EQ(f.b.load(0), 20);  // all of them, beyond the two slots
  EXPECT_EQ(f.b.waiting(), 0u);
}

TEST(BalancerAutoCapacity, TheWindowBoundsHowMuchShortWorkAnEngineHolds) {
  Fixture f;
  f.b.engine_up(0, 1);
  f.submit_task("first", "mid");
  f.finish("first", true, t0, 400us);  // short, but 400 us: 2 ms per slot holds 5
  for (int i = 0; i < 10; ++i)
    f.submit_task("m" + std::to_string(i), "mid");
  EXPECT_EQ(f.b.load(0), 5);
  EXPECT_EQ(f.b.waiting(), 5u);
}

TEST(BalancerAutoCapacity, LongTasksAreNeverSentAhead) {
  Fixture f;
  f.b.engine_up(0, 1);
  f.submit_task("first", "slow");
  f.finish("first", true, t0, 5ms);
  f.submit_task("s0", "slow");
  f.submit_task("s1", "slow");
  EXPECT_EQ(f.b.load(0), 1);
  EXPECT_EQ(f.engine_of("s1"), -1);
}

TEST(BalancerAutoCapacity, NothingShortQueuesBehindALongTaskOrJumpsAheadOfOne) {
  Fixture f;
  f.b.engine_up(0, 1);
  f.submit_task("learn", "add");
  f.finish("learn", true, t0, 5us);
  // A long task holds the engine: short ones wait rather than queue behind it there.
  f.submit_task("long", "slow");
  f.submit_task("short", "add");
  EXPECT_EQ(f.engine_of("long"), 0);
  EXPECT_EQ(f.engine_of("short"), -1);
  f.finish("long");
  EXPECT_EQ(f.engine_of("short"), 0);
  // The engine holds short work beyond its slot; a long task waits for the slot, and the
  // short tasks submitted after it wait behind it instead of keeping the engine full.
  for (int i = 0; i < 3; ++i)
    f.submit_task("x" + std::to_string(i), "add");
  EXPECT_EQ(f.b.load(0), 4);
  f.submit_task("long2", "slow");
  f.submit_task("after", "add");
  EXPECT_EQ(f.engine_of("long2"), -1);
  EXPECT_EQ(f.engine_of("after"), -1);
  for (const char* id : {"short", "x0", "x1", "x2"})
    f.finish(id, true, t0, 5us);
  EXPECT_EQ(f.engine_of("long2"), 0);
  EXPECT_EQ(f.engine_of("after"), -1);  // the long one now holds the engine
}

TEST(BalancerAutoCapacity, AFixedHwmIgnoresRunTimes) {
  Fixture f({.hwm = 2});
  f.b.engine_up(0, 1);
  f.submit_task("learn", "add");
  f.finish("learn", true, t0, 5us);
  for (int i = 0; i < 5; ++i)
    f.submit_task("a" + std::to_string(i), "add");
  EXPECT_EQ(f.b.load(0), 2);
}

// ---- priority and targets -------------------------------------------------------------------

TEST(BalancerPriority, HigherPriorityRunsFirstFifoWithin) {
  Fixture f;
  f.submit("low1", {.priority = -1});
  f.submit("mid1");
  f.submit("high1", {.priority = 5});
  f.submit("mid2");
  f.submit("high2", {.priority = 5});
  f.b.engine_up(0, 1);
  f.pump();
  std::vector<std::string> order;
  while (!f.sent.empty() && order.size() < 5) {
    const auto id = f.sent.back().msg_id;
    order.push_back(id);
    f.finish(id);
  }
  EXPECT_EQ(order, (std::vector<std::string>{"high1", "high2", "mid1", "mid2", "low1"}));
}

TEST(BalancerTargets, RestrictTheEnginesAndDoNotBlockOthers) {
  Fixture f;
  f.b.engine_up(0, 1);
  f.b.engine_up(1, 1);
  f.submit("busy", {.targets = {0}});
  f.submit("also0", {.targets = {0}, .priority = 9});  // waits for engine 0
  f.submit("any");                                     // runs on 1 meanwhile
  EXPECT_EQ(f.engine_of("busy"), 0);
  EXPECT_EQ(f.engine_of("also0"), -1);
  EXPECT_EQ(f.engine_of("any"), 1);
  f.finish("busy");
  EXPECT_EQ(f.engine_of("also0"), 0);
}

TEST(BalancerTargets, UnregisteredTargetsAreImpossible) {
  Fixture f;
  f.b.engine_up(0, 1);
  f.submit("a", {.targets = {5, 6}});
  ASSERT_EQ(f.failed.count("a"), 1u);
  EXPECT_EQ(f.failed["a"].code, ErrorCode::impossible_dependency);
  EXPECT_NE(f.failed["a"].message.find("[5, 6]"), std::string::npos) << f.failed["a"].message;
  EXPECT_NE(f.failed["a"].message.find("engines: [0]"), std::string::npos);
}

// ---- dependencies ---------------------------------------------------------------------------

TEST(BalancerDependencies, AfterWaitsForAllByDefault) {
  Fixture f;
  f.b.engine_up(0, 4);
  f.submit("a");
  f.submit("b");
  f.submit("c", {.after = dep({"a", "b"})});
  EXPECT_EQ(f.engine_of("c"), -1);
  f.finish("a");
  EXPECT_EQ(f.engine_of("c"), -1);
  f.finish("b");
  EXPECT_EQ(f.engine_of("c"), 0);
}

TEST(BalancerDependencies, AfterAnyRunsOnTheFirst) {
  Fixture f;
  f.b.engine_up(0, 4);
  f.submit("a");
  f.submit("b");
  f.submit("c", {.after = dep({"a", "b"}, false)});
  f.finish("b");
  EXPECT_EQ(f.engine_of("c"), 0);
}

TEST(BalancerDependencies, AFailedDependencyIsImpossibleAndCascades) {
  Fixture f;
  f.b.engine_up(0, 4);
  f.submit("a");
  f.submit("b", {.after = dep({"a"})});
  f.submit("c", {.after = dep({"b"})});
  f.finish("a", false);
  ASSERT_EQ(f.failed.count("b"), 1u);
  EXPECT_EQ(f.failed["b"].code, ErrorCode::impossible_dependency);
  EXPECT_NE(f.failed["b"].message.find("failed"), std::string::npos) << f.failed["b"].message;
  ASSERT_EQ(f.failed.count("c"), 1u);
  EXPECT_EQ(f.failed["c"].code, ErrorCode::impossible_dependency);
}

TEST(BalancerDependencies, FailureConditions) {
  Fixture f;
  f.b.engine_up(0, 8);
  f.submit("a");
  f.submit("on_fail", {.after = dep({"a"}, true, false, true)});
  f.submit("on_finish", {.after = dep({"a"}, true, true, true)});
  f.submit("on_success", {.after = dep({"a"})});
  f.finish("a", false);
  EXPECT_EQ(f.engine_of("on_fail"), 0);
  EXPECT_EQ(f.engine_of("on_finish"), 0);
  EXPECT_EQ(f.failed.count("on_success"), 1u);
  // And the other way round: a success makes an on-failure dependency impossible.
  f.submit("ok");
  f.submit("never", {.after = dep({"ok"}, true, false, true)});
  f.finish("ok");
  ASSERT_EQ(f.failed.count("never"), 1u);
  EXPECT_NE(f.failed["never"].message.find("succeeded"), std::string::npos);
}

TEST(BalancerDependencies, AnyIsImpossibleOnlyWhenAllWentWrong) {
  Fixture f;
  f.b.engine_up(0, 8);
  f.submit("a");
  f.submit("b");
  f.submit("c", {.after = dep({"a", "b"}, false)});
  f.finish("a", false);
  EXPECT_EQ(f.failed.count("c"), 0u);
  f.finish("b", false);
  EXPECT_EQ(f.failed.count("c"), 1u);
}

TEST(BalancerDependencies, DependenciesOnFinishedTasksAreCheckedAtOnce) {
  Fixture f;
  f.b.engine_up(0, 8);
  f.submit("a");
  f.finish("a");
  f.submit("b", {.after = dep({"a"})});
  EXPECT_EQ(f.engine_of("b"), 0);
}

TEST(BalancerDependencies, UnknownOrSelfIsInvalid) {
  Fixture f;
  f.b.engine_up(0, 1);
  f.submit("a", {.after = dep({"nope"})});
  ASSERT_EQ(f.failed.count("a"), 1u);
  EXPECT_EQ(f.failed["a"].code, ErrorCode::invalid_dependency);
  EXPECT_NE(f.failed["a"].message.find(id_of("nope").str()), std::string::npos);
  f.submit("s", {.follow = dep({"s"})});
  ASSERT_EQ(f.failed.count("s"), 1u);
  EXPECT_EQ(f.failed["s"].code, ErrorCode::invalid_dependency);
  EXPECT_NE(f.failed["s"].message.find("itself"), std::string::npos);
  // A task that failed as invalid is itself a failed dependency for later ones.
  f.submit("later", {.after = dep({"a"})});
  EXPECT_EQ(f.failed["later"].code, ErrorCode::impossible_dependency);
}

TEST(BalancerDependencies, FollowRunsWhereTheyRan) {
  Fixture f;
  f.b.engine_up(0, 8);
  f.b.engine_up(1, 8);
  f.submit("a", {.targets = {1}});
  f.submit("b", {.follow = dep({"a"})});
  EXPECT_EQ(f.engine_of("b"), -1);  // follow waits until it knows where
  f.finish("a");
  EXPECT_EQ(f.engine_of("b"), 1);
  for (int i = 0; i < 6; ++i) {  // and stays there, whatever the load
    f.submit("f" + std::to_string(i), {.follow = dep({"a"})});
    EXPECT_EQ(f.engine_of("f" + std::to_string(i)), 1);
  }
}

TEST(BalancerDependencies, FollowAllOnDifferentEnginesIsImpossibleFollowAnyIsNot) {
  Fixture f;
  f.b.engine_up(0, 4);
  f.b.engine_up(1, 4);
  f.submit("a", {.targets = {0}});
  f.submit("b", {.targets = {1}});
  f.finish("a");
  f.finish("b");
  f.submit("all", {.follow = dep({"a", "b"})});
  ASSERT_EQ(f.failed.count("all"), 1u);
  EXPECT_NE(f.failed["all"].message.find("different engines (0, 1)"), std::string::npos)
      << f.failed["all"].message;
  f.submit("any", {.follow = dep({"a", "b"}, false)});
  EXPECT_GE(f.engine_of("any"), 0);
}

TEST(BalancerDependencies, FollowingADeadEngineIsImpossible) {
  Fixture f;
  f.b.engine_up(0, 4);
  f.b.engine_up(1, 4);
  f.submit("a", {.targets = {1}});
  f.finish("a");
  f.b.engine_down(1, "", t0);
  f.pump();
  f.submit("b", {.follow = dep({"a"})});
  ASSERT_EQ(f.failed.count("b"), 1u);
  EXPECT_NE(f.failed["b"].message.find("engine it must follow (1) is gone"), std::string::npos)
      << f.failed["b"].message;
}

TEST(BalancerDependencies, FollowAndTargetsThatDoNotMeetAreImpossible) {
  Fixture f;
  f.b.engine_up(0, 4);
  f.b.engine_up(1, 4);
  f.submit("a", {.targets = {1}});
  f.finish("a");
  f.submit("b", {.follow = dep({"a"}), .targets = {0}});
  ASSERT_EQ(f.failed.count("b"), 1u);
  EXPECT_EQ(f.failed["b"].code, ErrorCode::impossible_dependency);
}

// ---- retries, dead engines, time-outs, aborts ---------------------------------------------

TEST(BalancerRetries, AFailedTaskRunsAgainOnADifferentEngine) {
  Fixture f({.scheme = Scheme::lru});
  f.b.engine_up(0, 1);
  f.b.engine_up(1, 1);
  f.submit("a", {.retries = 1});
  const auto first = f.engine_of("a");
  EXPECT_EQ(f.finish("a", false), Balancer::Finish::retry);
  ASSERT_EQ(f.sent.size(), 2u);
  EXPECT_NE(f.sent[1].engine, first);
  EXPECT_EQ(f.finish("a", false), Balancer::Finish::done);  // no retries left
}

TEST(BalancerRetries, ARetryWaitsForTheOtherEngineRatherThanRepeat) {
  Fixture f;
  f.b.engine_up(0, 1);
  f.b.engine_up(1, 1);
  f.submit("a", {.retries = 1, .targets = {}});
  f.submit("blocker");
  const auto first = f.engine_of("a");
  f.finish("a", false);
  EXPECT_EQ(f.sent.size(), 2u);  // the other engine is busy: the retry waits for it
  f.finish("blocker");
  EXPECT_EQ(f.sent.back().msg_id, "a");
  EXPECT_NE(f.sent.back().engine, first);
}

TEST(BalancerRetries, WhenEveryEngineWasTriedAnyWillDo) {
  Fixture f;
  f.b.engine_up(0, 1);
  f.submit("a", {.retries = 2});
  f.finish("a", false);
  EXPECT_EQ(f.sent.size(), 2u);
  EXPECT_EQ(f.sent[1].engine, 0);
}

TEST(BalancerDeadEngines, TasksFailWithEngineErrorOrAreRetried) {
  Fixture f;
  f.b.engine_up(0, 2);
  f.b.engine_up(1, 2);
  f.submit("plain", {.targets = {0}});
  f.submit("retried", {.retries = 1, .targets = {}});
  ASSERT_EQ(f.engine_of("retried"), 1);
  f.b.engine_down(1, "was killed by signal 9 (SIGKILL)", t0);
  f.pump();
  EXPECT_EQ(f.sent.back().msg_id, "retried");
  EXPECT_EQ(f.sent.back().engine, 0);
  f.submit("waiting", {.targets = {0}});  // engine 0 is full: it waits
  f.b.engine_down(0, "was killed by signal 9 (SIGKILL)", t0);
  f.pump();
  ASSERT_EQ(f.failed.count("plain"), 1u);
  const auto& e = f.failed["plain"];
  EXPECT_EQ(e.code, ErrorCode::engine);
  EXPECT_EQ(e.engine, 0);
  EXPECT_EQ(e.message,
            "engine 0 died while running task 't_plain' (was killed by signal 9 (SIGKILL))");
  EXPECT_EQ(f.failed.count("retried"), 1u);  // its one retry was spent
  EXPECT_EQ(f.b.running(), 0u);
  // A task waiting for a target engine keeps waiting: the engine may come back under its id.
  EXPECT_EQ(f.failed.count("waiting"), 0u);
  f.b.engine_up(0, 2);
  f.pump();
  EXPECT_EQ(f.engine_of("waiting"), 0);
}

TEST(BalancerTimeouts, WaitingPastTheTimeoutFailsWithTaskTimeout) {
  Fixture f;
  f.submit("queued", {}, 100ms, t0);
  f.submit("patient", {}, 10s, t0);
  f.b.engine_up(0, 1);
  f.submit("blocker", {.targets = {0}, .priority = 10});
  f.pump();
  f.b.expire(t0 + 99ms);
  f.pump();
  EXPECT_TRUE(f.failed.empty());
  EXPECT_EQ(f.b.next_deadline(), t0 + 100ms);
  f.b.expire(t0 + 100ms);
  f.pump();
  ASSERT_EQ(f.failed.count("queued"), 1u);
  EXPECT_EQ(f.failed["queued"].type, "ipp::TaskTimeout");
  EXPECT_NE(f.failed["queued"].message.find("waited 100 ms"), std::string::npos);
  EXPECT_EQ(f.failed.count("patient"), 0u);
  f.finish("blocker");
  EXPECT_EQ(f.engine_of("patient"), 0);  // dispatched: its deadline no longer applies
  f.b.expire(t0 + 1h);
  f.pump();
  EXPECT_EQ(f.failed.count("patient"), 0u);
}

TEST(BalancerTimeouts, DependenciesCanTimeOut) {
  Fixture f;
  f.b.engine_up(0, 2);
  f.submit("a");
  f.submit("b", {.after = dep({"a"})}, 1s, t0);
  f.b.expire(t0 + 2s);
  f.pump();
  ASSERT_EQ(f.failed.count("b"), 1u);
  EXPECT_NE(f.failed["b"].message.find("for its dependencies"), std::string::npos);
}

TEST(BalancerAbort, RemovesWaitingTasksOnly) {
  Fixture f;
  f.b.engine_up(0, 1);
  f.submit("running");
  f.submit("queued");
  f.submit("dependent", {.after = dep({"queued"})});
  EXPECT_FALSE(f.b.abort(id_of("running")));
  EXPECT_TRUE(f.b.abort(id_of("queued")));
  EXPECT_FALSE(f.b.abort(id_of("queued")));
  f.pump();
  EXPECT_EQ(f.failed["queued"].code, ErrorCode::aborted);
  EXPECT_EQ(f.failed["queued"].type, "ipp::TaskAborted");
  EXPECT_EQ(f.failed["dependent"].code, ErrorCode::impossible_dependency);
  f.finish("running");
  EXPECT_EQ(f.sent.size(), 1u);
  EXPECT_EQ(f.b.waiting(), 0u);
}

TEST(BalancerMemory, ForgetsTheOldestFinishedTasks) {
  Fixture f({.remember = 2});
  f.b.engine_up(0, 1);
  for (const char* id : {"a", "b", "c"}) {
    f.submit(id);
    f.finish(id);
  }
  f.submit("x", {.after = dep({"a"})});
  EXPECT_EQ(f.failed["x"].code, ErrorCode::invalid_dependency);
  f.submit("y", {.after = dep({"c"})});
  EXPECT_EQ(f.engine_of("y"), 0);
}

}  // namespace
}  // namespace ipp::sched

namespace ipp::sched {
namespace {

TEST(BalancerHold, ATaskAnsweredPastItsTimeLimitKeepsItsSlotUntilItReturns) {
  Fixture f;
  f.b.engine_up(0, 1);
  f.submit("a");
  ASSERT_EQ(f.engine_of("a"), 0);
  f.submit("b");
  EXPECT_EQ(f.engine_of("b"), -1) << "one slot, taken";
  // "a" timed out: answered, but its thread still runs it (the scheduler holds its slot
  // before it schedules again).
  (void)f.b.finished(id_of("a"), false, t0);
  f.b.hold(0);
  f.pump();
  EXPECT_EQ(f.engine_of("b"), -1) << "the slot is still taken";
  EXPECT_EQ(f.b.load(0), 1);
  f.b.release(0);
  f.pump();
  EXPECT_EQ(f.engine_of("b"), 0) << "free once it returned";
  f.b.release(0);  // a release without a hold changes nothing
  EXPECT_EQ(f.b.load(0), 1);
}

TEST(BalancerHold, AnEngineThatGoesDownTakesItsHoldsWithIt) {
  Fixture f;
  f.b.engine_up(0, 1);
  f.b.hold(0);
  f.submit("a");
  EXPECT_EQ(f.engine_of("a"), -1);
  f.b.engine_down(0, "exited", t0);
  f.b.engine_up(0, 1);  // restarted under its id
  f.pump();
  EXPECT_EQ(f.engine_of("a"), 0);
}

}  // namespace
}  // namespace ipp::sched

namespace ipp::sched {
namespace {

TEST(BalancerPlugins, ATaskGoesOnlyToEnginesThatHaveItsPluginWhenSomeAreKnownTo) {
  Fixture f({.scheme = Scheme::lru, .hwm = 0});
  for (std::int64_t e = 0; e < 3; ++e)
    f.b.engine_up(e, 4);
  // The plugin loaded on engines 0 and 2; it failed on engine 1.
  f.b.engine_tasks(0, {"mul", "arith.mul"}, true);
  f.b.engine_tasks(2, {"mul", "arith.mul"}, true);
  for (int i = 0; i < 6; ++i)
    f.submit_task("m" + std::to_string(i), i % 2 == 0 ? "mul" : "arith.mul");
  std::set<std::int64_t> used;
  for (int i = 0; i < 6; ++i)
    used.insert(f.engine_of("m" + std::to_string(i)));
  EXPECT_EQ(used, (std::set<std::int64_t>{0, 2}));
  // A name no engine is known to have goes to any engine (which answers for it).
  for (int i = 0; i < 3; ++i)
    f.submit_task("u" + std::to_string(i), "nowhere");
  std::set<std::int64_t> any;
  for (int i = 0; i < 3; ++i)
    any.insert(f.engine_of("u" + std::to_string(i)));
  EXPECT_EQ(any, (std::set<std::int64_t>{0, 1, 2})) << "lru cycles through all three";
}

TEST(BalancerPlugins, AnUnloadOrADeadEngineTakesItOutAndAFullProviderHoldsNoOtherBack) {
  Fixture f({.scheme = Scheme::leastload, .hwm = 1});
  f.b.engine_up(0, 1);
  f.b.engine_up(1, 1);
  f.b.engine_tasks(0, {"mul"}, true);
  f.submit_task("a", "mul");
  EXPECT_EQ(f.engine_of("a"), 0);
  // Engine 0 is full: the next "mul" waits for it, and a task any engine may run still goes.
  f.submit_task("b", "mul");
  EXPECT_EQ(f.engine_of("b"), -1);
  f.submit_task("c", "other");
  EXPECT_EQ(f.engine_of("c"), 1);
  (void)f.finish("a");
  EXPECT_EQ(f.engine_of("b"), 0);
  // Unloaded there: nobody is known to have it, and it goes anywhere again.
  (void)f.finish("b");
  (void)f.finish("c");
  f.b.engine_tasks(0, {"mul"}, false);
  f.b.engine_tasks(1, {"mul"}, true);
  f.submit_task("d", "mul");
  EXPECT_EQ(f.engine_of("d"), 1);
  f.b.engine_down(1, "was killed", t0);
  f.submit_task("e", "mul");
  EXPECT_EQ(f.engine_of("e"), 0) << "its only provider died: any engine, which answers";
}

}  // namespace
}  // namespace ipp::sched
