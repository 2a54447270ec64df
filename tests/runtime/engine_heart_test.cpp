// The engine's heartbeat decisions with a fake clock: pings four times per period, registering
// again after two refusals in a row, and giving up on a controller silent too long.
#include "engine/engine_heart.hpp"

#include <gtest/gtest.h>

namespace ipp::engine {
namespace {

using namespace std::chrono_literals;
using Clock = EngineHeart::Clock;

TEST(EngineHeart, PingsFourTimesPerPeriod) {
  const Clock::time_point t0{};
  EngineHeart heart(1000ms, 10000ms, t0);
  int pings = 0;
  for (auto t = t0; t < t0 + 1000ms; t += 10ms)
    pings += heart.ping_due(t) ? 1 : 0;
  EXPECT_EQ(pings, 4);
  EXPECT_EQ(heart.until_ping(t0 + 1000ms), 0ms);
}

TEST(EngineHeart, TwoRefusalsInARowMeanRegisteringAgain) {
  const Clock::time_point t0{};
  EngineHeart heart(1000ms, 10000ms, t0);
  EXPECT_FALSE(heart.heard(t0, true)) << "one may race the controller learning of the engine";
  EXPECT_FALSE(heart.heard(t0, false));
  EXPECT_FALSE(heart.heard(t0, true));
  EXPECT_TRUE(heart.heard(t0, true));
  EXPECT_FALSE(heart.heard(t0, true)) << "counted afresh after saying so";
}

TEST(EngineHeart, GivesUpOnASilentControllerAfterItsTimeoutAtLeastTwoPeriods) {
  const Clock::time_point t0{};
  EngineHeart heart(1000ms, 10000ms, t0);
  EXPECT_FALSE(heart.given_up(t0 + 9000ms));
  (void)heart.heard(t0 + 9000ms, false);
  EXPECT_FALSE(heart.given_up(t0 + 18000ms));
  EXPECT_TRUE(heart.given_up(t0 + 19001ms));
  EngineHeart short_timeout(1000ms, 500ms, t0);
  EXPECT_EQ(short_timeout.timeout(), 2000ms) << "never less than two periods";
  EXPECT_FALSE(short_timeout.given_up(t0 + 1500ms));
}

}  // namespace
}  // namespace ipp::engine
