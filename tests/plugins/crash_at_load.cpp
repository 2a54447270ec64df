// A plugin whose static initializer kills the process that loads it: for tests that such a
// plugin is not sent again to engines that register later (they would crash-loop).
#include <csignal>
#include <cstdint>

#include <ipp/plugin.hpp>

namespace {
// Sanitizer builds handle SIGSEGV themselves (and abort); the default disposition makes the
// death a SIGSEGV in every build.
const int kBoom = [] {
  std::signal(SIGSEGV, SIG_DFL);
  std::raise(SIGSEGV);
  return 0;
}();
}  // namespace

/// Never runs: loading the plugin kills its engine.
std::int64_t never(std::int64_t x) {
  return x + kBoom;
}

IPP_TASK(never, "Never runs: loading the plugin kills its engine.")
