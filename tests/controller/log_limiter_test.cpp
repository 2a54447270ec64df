// Rate-limited warnings with a fake clock: a burst per window, then silence counted and told.

#include "log_limiter.hpp"

#include <gtest/gtest.h>

namespace ipp::ctrl {
namespace {

using namespace std::chrono_literals;
const LogLimiter::Clock::time_point t0{};

TEST(LogLimiter, ABurstPerWindowThenTheCountOfWhatWasHeldBack) {
  LogLimiter limit(3, 10s);
  std::uint64_t more = 99;
  int allowed = 0;
  for (int i = 0; i < 45000; ++i) {
    if (limit.allow(t0 + std::chrono::microseconds(i), more)) {
      ++allowed;
      EXPECT_EQ(more, 0u);
    }
  }
  EXPECT_EQ(allowed, 3);
  ASSERT_TRUE(limit.allow(t0 + 10s, more));
  EXPECT_EQ(more, 44997u) << "the first line of the next window says how many were held back";
  ASSERT_TRUE(limit.allow(t0 + 10s, more));
  EXPECT_EQ(more, 0u);
}

TEST(LogLimiter, QuietTimesLogEverything) {
  LogLimiter limit(2, 1s);
  std::uint64_t more = 0;
  for (int i = 0; i < 20; ++i) {
    EXPECT_TRUE(limit.allow(t0 + i * 1s, more));
    EXPECT_EQ(more, 0u);
  }
}

TEST(LogLimiter, SaysHowManyMore) {
  EXPECT_EQ(LogLimiter::more(0), "");
  EXPECT_EQ(LogLimiter::more(12), " (and 12 more like it held back)");
}

}  // namespace
}  // namespace ipp::ctrl
