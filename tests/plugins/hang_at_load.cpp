// A plugin whose static initializer never returns: for tests that a push is answered anyway,
// naming the engines still loading it.
#include <chrono>
#include <cstdint>
#include <thread>

#include <ipp/plugin.hpp>

namespace {
const int kNever = [] {
  for (;;)
    std::this_thread::sleep_for(std::chrono::hours(1));
  return 0;
}();
}  // namespace

/// Never runs: loading the plugin never ends.
std::int64_t never(std::int64_t x) {
  return x + kNever;
}

IPP_TASK(never, "Never runs: loading the plugin never ends.")
