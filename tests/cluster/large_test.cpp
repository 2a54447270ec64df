// Values larger than the 2 GiB FlatBuffers limit through push and pull on a real cluster.
// Labelled `large` (ctest -L large); CI runs it.
#include <cstring>
#include <iostream>

#include <gtest/gtest.h>

#include "ipp/client.hpp"
#include "support/cluster.hpp"

namespace ipp {
namespace {

using namespace std::chrono_literals;

class LargeValues : public test::Cluster {};

TEST_F(LargeValues, AnArrayOverTwoGiBPushesAndPulls) {
  start(1, 2);
  Client rc(ClientOptions{.profile_dir = dir_.path(), .timeout = Duration(120000)});
  rc.push_plugin(test::plugin("arrays"));
  constexpr std::uint64_t kCount = (std::uint64_t{2} << 30) / 8 + 4096;  // 2 GiB + 32 KiB
  std::vector<double> xs(kCount);
  for (std::uint64_t i = 0; i < kCount; ++i)
    xs[i] = static_cast<double>(i % 1000003);
  Value big = std::move(xs);
  ASSERT_GT(big.as_array().buffer().size(), std::uint64_t{2} << 30);

  DirectView e0 = rc[0];
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  auto lap = [&](const char* what) {
    const auto t1 = Clock::now();
    std::cout << what << ": " << std::chrono::duration<double>(t1 - t0).count() << " s\n";
    t0 = t1;
  };
  e0.push_async({{"big", big}}).get(600s);
  lap("push");
  // The engine has it whole: a task reads it in place.
  double want = 0;
  for (double x : big.as_array().view<double>())
    want += x;
  t0 = Clock::now();
  EXPECT_EQ(e0.apply_async("sum", {ref("big")}).get(600s).as<double>(), want);
  lap("sum on the engine");
  const Value back = e0.pull_async("big").get(600s);
  lap("pull");
  ASSERT_EQ(back.kind(), Value::Kind::array);
  EXPECT_EQ(back.as_array().dtype(), DType::float64);
  ASSERT_EQ(back.size(), kCount);
  EXPECT_EQ(std::memcmp(back.as_array().buffer().data(), big.as_array().buffer().data(),
                        big.as_array().buffer().size()),
            0);
}

}  // namespace
}  // namespace ipp
