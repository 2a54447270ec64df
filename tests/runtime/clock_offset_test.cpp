// An engine's or a client's estimate of the controller's clock, from round trips: the sample with
// the shortest round trip among the last ones wins, and samples that say nothing are ignored.
#include "ipp/net/clock_offset.hpp"

#include <gtest/gtest.h>

namespace ipp::net {
namespace {

constexpr std::int64_t kSkew = 5'000'000;  // the controller's clock 5 s ahead of this one

TEST(ClockOffset, TheShortestRoundTripOfTheLastOnesGivesTheOffset) {
  ClockOffset clock;
  EXPECT_EQ(clock.offset_us(), 0);
  EXPECT_EQ(clock.rtt_us(), -1);
  // A slow round trip whose answer came late: its estimate is off by up to half of it.
  std::int64_t t = 1'000'000'000;
  clock.sample(t, t + kSkew + 9'000, t + 10'000);
  EXPECT_EQ(clock.rtt_us(), 10'000);
  EXPECT_NEAR(clock.offset_us(), kSkew, 5'000);
  // A quick one replaces it.
  t += 1'000'000;
  clock.sample(t, t + kSkew + 100, t + 200);
  EXPECT_EQ(clock.rtt_us(), 200);
  EXPECT_EQ(clock.offset_us(), kSkew);
  // Slower ones after it do not, until it leaves the window.
  for (std::size_t i = 0; i + 1 < ClockOffset::kWindow; ++i) {
    t += 1'000'000;
    clock.sample(t, t + kSkew + 2'000, t + 3'000);
    EXPECT_EQ(clock.rtt_us(), 200) << i;
  }
  t += 1'000'000;
  clock.sample(t, t + kSkew + 2'000, t + 3'000);
  EXPECT_EQ(clock.rtt_us(), 3'000) << "the quick sample is past the window";
  EXPECT_NEAR(clock.offset_us(), kSkew, 1'500);
}

TEST(ClockOffset, SamplesThatSayNothingAreIgnored) {
  ClockOffset clock;
  clock.sample(100, 0, 200);      // the controller said no time
  clock.sample(300, 5'000, 200);  // this clock went back meanwhile
  EXPECT_EQ(clock.rtt_us(), -1);
  EXPECT_EQ(clock.offset_us(), 0);
  // A controller behind this clock: a negative offset.
  clock.sample(10'000'000, 7'000'050, 10'000'100);
  EXPECT_EQ(clock.offset_us(), -3'000'000);
}

TEST(ClockOffset, AnOffsetWithinItsOwnErrorCountsAsNone) {
  ClockOffset clock;
  EXPECT_EQ(clock.significant_offset_us(), 0) << "no sample yet";
  // The controller's host itself: a round trip of 80 us, a measured offset of 30 us.
  clock.sample(1'000'000, 1'000'070, 1'000'080);
  EXPECT_EQ(clock.offset_us(), 30);
  EXPECT_EQ(clock.significant_offset_us(), 0);
  // Another host, its clock 2 s behind: kept.
  ClockOffset skewed;
  skewed.sample(1'000'000, 3'000'040, 1'000'080);
  EXPECT_EQ(skewed.significant_offset_us(), 2'000'000);
}

}  // namespace
}  // namespace ipp::net
