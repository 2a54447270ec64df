// sysinfo: what an engine is and where it runs. Loaded by every engine at start.

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include <oneapi/tbb/task_arena.h>

#include <ipp/plugin.hpp>

namespace {

std::int64_t getpid_task() {
  return ::getpid();
}

std::string hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

/// Sleeps in short steps so a cancelled task returns promptly; returns the seconds slept.
double sleep_task(ipp::Context& ctx, double seconds) {
  if (seconds < 0) throw std::invalid_argument("sleep: seconds must not be negative");
  const auto start = std::chrono::steady_clock::now();
  const auto until = start + std::chrono::duration<double>(seconds);
  while (!ctx.cancelled()) {
    const auto now = std::chrono::steady_clock::now();
    if (now >= until) break;
    const auto remaining = std::chrono::duration_cast<std::chrono::microseconds>(until - now);
    std::this_thread::sleep_for(
        std::min(remaining + std::chrono::microseconds(1), std::chrono::microseconds(10'000)));
  }
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

ipp::Value echo(ipp::Value v) {
  return v;
}

std::int64_t nthreads() {
  return tbb::this_task_arena::max_concurrency();
}

std::int64_t engine_id(ipp::Context& ctx) {
  return ctx.engine_id();
}

}  // namespace

// Registered under the names users type; the C++ names avoid clashing with ::getpid/::sleep.
IPP_TASK_AS(getpid, getpid_task, "The engine's process id.")
IPP_TASK_AS(sleep, sleep_task,
            "Sleeps for `seconds` (stops early when cancelled); returns the seconds slept.")
IPP_TASK(hostname, "The name of the host the engine runs on.")
IPP_TASK(echo, "Returns its argument unchanged.")
IPP_TASK(nthreads, "Threads in the engine's task pool.")
IPP_TASK(engine_id, "The engine's id.")
