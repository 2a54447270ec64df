// The heartbeat monitor's table with a fake clock: grace for registering engines, silence
// past the limit, pings that keep an engine, forgotten engines, and stalls of the monitor
// itself that blame nobody.

#include "heart_monitor.hpp"

#include <gtest/gtest.h>

namespace ipp::ctrl {
namespace {

using namespace std::chrono_literals;
using Clock = HeartMonitor::Clock;
const Clock::time_point t0{};

/// Ticks every 50 ms from `from` to `to`, as the monitor's loop does, collecting the silent.
std::vector<std::int64_t> run(HeartMonitor& m, Clock::time_point from, Clock::time_point to) {
  std::vector<std::int64_t> out;
  for (auto t = from; t <= to; t += 50ms) {
    for (auto id : m.tick(t))
      out.push_back(id);
  }
  return out;
}

TEST(HeartMonitor, AnEngineThatStopsPingingIsSilentAfterTheLimit) {
  HeartMonitor m(1s);
  m.on_event(EngineEvent::up(3, 2), t0);
  EXPECT_TRUE(run(m, t0, t0 + 1000ms).empty());
  EXPECT_EQ(run(m, t0 + 1050ms, t0 + 1100ms), std::vector<std::int64_t>{3});
  EXPECT_EQ(m.size(), 0u);
  EXPECT_TRUE(run(m, t0 + 1150ms, t0 + 3s).empty()) << "reported once, then forgotten";
}

TEST(HeartMonitor, PingsKeepAnEngine) {
  HeartMonitor m(1s);
  m.on_event(EngineEvent::up(1, 1), t0);
  for (auto t = t0; t < t0 + 5s; t += 250ms) {
    EXPECT_TRUE(m.ping(1, t));
    EXPECT_TRUE(m.tick(t + 50ms).empty());
  }
  EXPECT_EQ(m.size(), 1u);
}

TEST(HeartMonitor, ARegisteringEngineGetsAPeriodToStartPinging) {
  HeartMonitor m(1s);
  m.on_event(EngineEvent::known(2), t0);
  EXPECT_TRUE(run(m, t0, t0 + 2000ms).empty()) << "known at t0: seen as at t0 + limit";
  EXPECT_EQ(run(m, t0 + 2050ms, t0 + 2100ms), std::vector<std::int64_t>{2});
}

TEST(HeartMonitor, AFirstPingEndsTheGracePeriod) {
  HeartMonitor m(1s);
  m.on_event(EngineEvent::known(2), t0);
  EXPECT_TRUE(m.ping(2, t0 + 100ms));
  EXPECT_EQ(run(m, t0 + 100ms, t0 + 1200ms), std::vector<std::int64_t>{2});
}

TEST(HeartMonitor, UpDoesNotShortenTheGracePeriod) {
  HeartMonitor m(1s);
  m.on_event(EngineEvent::known(4), t0);
  m.on_event(EngineEvent::up(4, 8), t0 + 10ms);
  EXPECT_TRUE(run(m, t0, t0 + 2000ms).empty());
}

TEST(HeartMonitor, PingsFromUnknownOrDroppedEnginesAreRefused) {
  HeartMonitor m(1s);
  EXPECT_FALSE(m.ping(9, t0));
  m.on_event(EngineEvent::up(9, 1), t0);
  EXPECT_TRUE(m.ping(9, t0));
  m.on_event(EngineEvent::down(9, "was removed"), t0 + 10ms);
  EXPECT_FALSE(m.ping(9, t0 + 20ms));
  EXPECT_TRUE(run(m, t0, t0 + 3s).empty());
}

TEST(HeartMonitor, DrainAndSilentEventsChangeNothing) {
  HeartMonitor m(1s);
  m.on_event(EngineEvent::up(5, 1), t0);
  m.on_event(EngineEvent::drain(5), t0 + 500ms);
  m.on_event(EngineEvent::silent(5), t0 + 500ms);
  EXPECT_EQ(m.size(), 1u);
  EXPECT_EQ(run(m, t0, t0 + 1100ms), std::vector<std::int64_t>{5});
}

TEST(HeartMonitor, AStallOfTheMonitorItselfBlamesNobody) {
  HeartMonitor m(1s);
  m.on_event(EngineEvent::up(1, 1), t0);
  m.on_event(EngineEvent::up(2, 1), t0);
  EXPECT_TRUE(m.tick(t0 + 100ms).empty());
  EXPECT_EQ(m.last_stall(), Clock::duration::zero());
  // Not scheduled for 5 s: both engines' pings sat unread meanwhile.
  EXPECT_TRUE(m.tick(t0 + 5100ms).empty());
  EXPECT_EQ(m.last_stall(), 5000ms);
  EXPECT_TRUE(m.ping(1, t0 + 5110ms));
  // Engine 2 really is silent: it goes half a limit after the stall, not at once.
  EXPECT_TRUE(run(m, t0 + 5150ms, t0 + 5600ms).empty());
  EXPECT_EQ(run(m, t0 + 5650ms, t0 + 5700ms), std::vector<std::int64_t>{2});
}

TEST(HeartMonitor, ManyEnginesEachJudgedOnTheirOwn) {
  HeartMonitor m(1s);
  for (std::int64_t id = 0; id < 100; ++id)
    m.on_event(EngineEvent::up(id, 1), t0);
  std::vector<std::int64_t> expected;
  for (auto t = t0; t <= t0 + 1500ms; t += 50ms) {
    for (std::int64_t id = 0; id < 100; ++id) {
      if (id % 2 == 0) (void)m.ping(id, t);
    }
    for (auto id : m.tick(t))
      expected.push_back(id);
  }
  EXPECT_EQ(expected.size(), 50u);
  for (auto id : expected)
    EXPECT_EQ(id % 2, 1);
  EXPECT_EQ(m.size(), 50u);
}

}  // namespace
}  // namespace ipp::ctrl
