// A new build of a plugin replaces its tasks for new calls while calls already running
// finish on the old code, which stays loaded as long as they need it.
#include <chrono>
#include <future>
#include <thread>

#include <gtest/gtest.h>

#include "ipp/runtime/runtime.hpp"
#include "support/paths.hpp"

namespace ipp {
namespace {

using namespace std::chrono_literals;

bool wait_until(const std::function<bool()>& cond, std::chrono::seconds limit = 20s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!cond()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

TEST(HotReload, NewCallsRunTheNewBuildWhileACallInFlightFinishesOnTheOld) {
  test::TempDir dir;
  Runtime rt({.threads = 2, .store_dir = dir.path()});
  auto v1 = rt.load(test::test_plugin("reload_v1"));
  ASSERT_EQ(rt.call("reload.version").as<int>(), 1);

  std::promise<TaskOutcome> held;
  rt.submit("held_version", encode(Value(Value::List{})),
            [&](TaskOutcome o) { held.set_value(std::move(o)); });
  ASSERT_TRUE(wait_until([&] { return rt.ns().get("started").has_value(); }));

  auto v2 = rt.load(test::test_plugin("reload_v2"));
  EXPECT_NE(v1->hash(), v2->hash());
  EXPECT_EQ(v2->version(), "2.0.0");
  EXPECT_EQ(rt.call("version").as<int>(), 2);
  ASSERT_EQ(rt.plugins().size(), 1u);
  EXPECT_EQ(rt.plugins()[0]->version(), "2.0.0");

  v1.reset();  // the registry no longer holds v1; only the running call does
  rt.ns().set("release", true);
  TaskOutcome out = held.get_future().get();
  ASSERT_TRUE(out.ok()) << out.error->describe();
  EXPECT_EQ(decode(out.result).as<int>(), 1);
  EXPECT_EQ(rt.call("held_version").as<int>(), 2);
}

TEST(HotReload, SwitchingBackAndForthAlwaysRunsTheLatest) {
  test::TempDir dir;
  Runtime rt({.threads = 1, .store_dir = dir.path()});
  for (int round = 0; round < 3; ++round) {
    rt.load(test::test_plugin("reload_v1"));
    EXPECT_EQ(rt.call("version").as<int>(), 1);
    rt.load(test::test_plugin("reload_v2"));
    EXPECT_EQ(rt.call("version").as<int>(), 2);
  }
}

TEST(HotReload, ABuildCopiedOverTheSamePathLoadsAsItself) {
  // The loader would hand back the old handle for a reused path; the content-addressed
  // store gives every build its own path.
  test::TempDir dir;
  Runtime rt({.threads = 1, .store_dir = dir / "store"});
  const auto path = dir / "reload.so";
  std::filesystem::copy_file(test::test_plugin("reload_v1"), path);
  rt.load(path);
  EXPECT_EQ(rt.call("version").as<int>(), 1);
  std::filesystem::copy_file(test::test_plugin("reload_v2"), path,
                             std::filesystem::copy_options::overwrite_existing);
  rt.load(path);
  EXPECT_EQ(rt.call("version").as<int>(), 2);
}

}  // namespace
}  // namespace ipp
