// The engine's guard against a plugin load that never ends: it fires past its limit, never
// when disarmed in time, and the default ends the process with the code its supervisor reads.
#include "engine/load_watchdog.hpp"

#include <atomic>
#include <thread>

#include <gtest/gtest.h>

#include "ipp/net/engine_exit.hpp"

namespace ipp::engine {
namespace {

using namespace std::chrono_literals;

TEST(LoadWatchdog, FiresOnlyWhenTheLoadOutlastsItsLimit) {
  std::atomic<int> fired{0};
  {
    LoadWatchdog quick(1, 10s, "fast.so", [&] { ++fired; });
  }
  EXPECT_EQ(fired.load(), 0) << "disarmed in time";
  {
    LoadWatchdog slow(1, 20ms, "slow.so", [&] { ++fired; });
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (fired.load() == 0 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(5ms);
  }
  EXPECT_EQ(fired.load(), 1);
  EXPECT_EQ(LoadWatchdog::limit_for(1000ms), 1500ms);
}

TEST(LoadWatchdog, ByDefaultTheEngineExitsForItsSupervisorToRestartIt) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(
      {
        LoadWatchdog hang(7, 20ms, "hang.so");
        std::this_thread::sleep_for(10s);  // the initializer that never returns
      },
      ::testing::ExitedWithCode(net::kEnginePluginLoadHung), "");
}

}  // namespace
}  // namespace ipp::engine
