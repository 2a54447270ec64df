// Two builds of the plugin `reload` (RELOAD_VERSION 1 and 2) for hot-reload tests.
#include <chrono>
#include <cstdint>
#include <thread>

#include <ipp/plugin.hpp>

std::int64_t version() {
  return RELOAD_VERSION;
}

/// Marks itself started in the namespace, waits until the name `release` is bound, and
/// returns this build's version: the test holds the call in flight while it reloads.
std::int64_t held_version(ipp::Context& ctx) {
  ctx.set("started", true);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!ctx.get("release") && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return RELOAD_VERSION;
}

/// Sleeps, then returns this build's version: a call in flight across a push.
std::int64_t slow_version(double seconds) {
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  return RELOAD_VERSION;
}

IPP_TASK(version, "This build's version.")
IPP_TASK(slow_version)
IPP_TASK(held_version)
