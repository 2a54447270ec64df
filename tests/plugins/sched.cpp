// Tasks for the load-balancing and fault-tolerance tests.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include <ipp/plugin.hpp>

/// Throws on engine `engine`; elsewhere returns the engine's id.
std::int64_t fail_on(ipp::Context& ctx, std::int64_t engine) {
  if (ctx.engine_id() == engine)
    throw std::runtime_error("fail_on: refused on engine " + std::to_string(engine));
  return ctx.engine_id();
}

/// Returns `x` and the engine that ran it, as [x, engine].
std::tuple<std::int64_t, std::int64_t> tag(ipp::Context& ctx, std::int64_t x) {
  return {x, ctx.engine_id()};
}

/// Sleeps `seconds` without looking at cancellation; returns "done".
std::string stubborn(double seconds) {
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  return "done";
}

/// Binds `started` in the namespace, then works in 1 ms steps for up to `seconds`, stopping
/// early when cancelled; binds `saw_cancel` to whether it saw the cancellation.
bool until_cancelled(ipp::Context& ctx, double seconds) {
  ctx.set("started", true);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  bool seen = false;
  while (!seen && std::chrono::steady_clock::now() < deadline) {
    seen = ctx.cancelled();
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ctx.set("saw_cancel", seen);
  return seen;
}

/// a * b, after sleeping `seconds`.
std::int64_t mul_slowly(std::int64_t a, std::int64_t b, double seconds) {
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  return a * b;
}

/// Works `ms` milliseconds in 1 ms steps (stopping early when cancelled), then appends one line
/// "TOKEN PID" to the file `journal` and returns `token`: the journal counts the runs that
/// finished, whatever became of their replies.
std::string journal(ipp::Context& ctx, std::string journal, std::string token, std::int64_t ms) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (ctx.cancelled()) return token;  // reported as cancelled, and not in the journal
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  const std::string line = token + " " + std::to_string(::getpid()) + "\n";
  const int fd = ::open(journal.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) throw std::runtime_error("journal: cannot open " + journal);
  const bool whole = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
  ::close(fd);
  if (!whole) throw std::runtime_error("journal: cannot write " + journal);
  return token;
}

IPP_TASK(fail_on, "Throws on the given engine.")
IPP_TASK(tag, "Returns [x, engine id].")
IPP_TASK(stubborn, "Sleeps without looking at cancellation.")
IPP_TASK(until_cancelled, "Waits until cancelled or the time is up.")
IPP_TASK(mul_slowly, "a * b after a nap.")
IPP_TASK(journal, "Works a while, then notes its token and pid in a file.")
