// A plugin whose static initializer takes 3 s: for tests of what happens to an engine, and to
// the plugin, when the engine is stopped while it loads one.
#include <chrono>
#include <cstdint>
#include <thread>

#include <ipp/plugin.hpp>

namespace {
const std::int64_t kLoaded = [] {
  std::this_thread::sleep_for(std::chrono::seconds(3));
  return std::int64_t{1};
}();
}  // namespace

/// x + 1, once the plugin has loaded.
std::int64_t slow_loaded(std::int64_t x) {
  return x + kLoaded;
}

IPP_TASK(slow_loaded, "x + 1, from a plugin that takes 3 s to load.")
