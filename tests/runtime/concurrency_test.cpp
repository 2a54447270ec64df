// Concurrency of the pool, checked by rendezvous rather than by timing: `rendezvous(n)`
// returns true only when n calls are inside it at once.
#include <atomic>
#include <future>
#include <vector>

#include <gtest/gtest.h>

#include "ipp/runtime/runtime.hpp"
#include "support/paths.hpp"

namespace ipp {
namespace {

class Concurrency : public ::testing::TestWithParam<int> {};

TEST_P(Concurrency, AsManyCallsRunAtOnceAsThereAreThreads) {
  const int threads = GetParam();
  test::TempDir dir;
  Runtime rt({.threads = threads, .store_dir = dir.path()});
  rt.load(test::test_plugin("types"));
  EXPECT_EQ(rt.executor().threads(), threads);
  std::vector<std::promise<TaskOutcome>> results(threads);
  const Payload args = encode(Value::list({threads}));
  for (auto& r : results) {
    rt.submit("rendezvous", args, [&r](TaskOutcome o) { r.set_value(std::move(o)); });
  }
  for (auto& r : results) {
    TaskOutcome out = r.get_future().get();
    ASSERT_TRUE(out.ok());
    EXPECT_TRUE(decode(out.result).as<bool>())
        << "calls did not overlap with " << threads << " threads";
  }
}

TEST_P(Concurrency, ManySubmittersGetEveryResult) {
  const int threads = GetParam();
  test::TempDir dir;
  Runtime rt({.threads = threads, .store_dir = dir.path()});
  rt.load(test::plugin("arith"));
  constexpr int kSubmitters = 4;
  constexpr int kCalls = 500;
  std::atomic<int> correct{0};
  {
    std::vector<std::thread> submitters;
    for (int s = 0; s < kSubmitters; ++s) {
      submitters.emplace_back([&, s] {
        for (int i = 0; i < kCalls; ++i) {
          rt.submit("mul", encode(Value::list({s, i})), [&, s, i](TaskOutcome o) {
            if (o.ok() && decode(o.result).as<std::int64_t>() == s * i) ++correct;
          });
        }
      });
    }
    for (auto& t : submitters)
      t.join();
  }
  rt.executor().wait_idle();
  EXPECT_EQ(correct.load(), kSubmitters * kCalls);
}

TEST_P(Concurrency, MapUsesEveryThread) {
  const int threads = GetParam();
  test::TempDir dir;
  Runtime rt({.threads = threads, .store_dir = dir.path()});
  rt.load(test::test_plugin("types"));
  // Each element waits for `threads` elements to be inside at once.
  Value out = rt.map("rendezvous", {std::vector<std::int64_t>(threads, threads)});
  for (std::uint64_t i = 0; i < out.size(); ++i)
    EXPECT_TRUE(out[i].as<bool>());
}

INSTANTIATE_TEST_SUITE_P(Workers, Concurrency, ::testing::Values(1, 2, 4));

}  // namespace
}  // namespace ipp
