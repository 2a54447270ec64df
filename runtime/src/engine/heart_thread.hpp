#pragma once

// The engine's heartbeat thread: its own ZeroMQ context and socket, pinging by EngineHeart's
// decisions, noticing a controller that forgot the engine or fell silent.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>

#include "ipp/net/clock_offset.hpp"
#include "ipp/net/curve.hpp"
#include "ipp/net/signer.hpp"

namespace ipp::engine {

/// Runs from construction to destruction (which stops and joins it). An engine busy with a
/// large message (verifying or decoding gigabytes) still answers, and a silent controller is
/// still noticed: the thread has a context (an I/O thread) of its own.
///
///     HeartThread heart({.endpoint = ..., .identity = "e3", .signer = signer, ...});
///     if (heart.need_register()) ...;   // the controller does not know this engine
///
/// When the controller stays silent past the timeout, it logs so, sets `exit_code` to 3 and
/// `stop` (the engine's run loop ends).
class HeartThread {
 public:
  struct Options {
    std::string endpoint;  ///< the controller's heartbeat endpoint
    net::CurveKeys curve;  ///< how to encrypt, when the controller does
    std::string identity;  ///< the engine's routing id, "e<id>"
    const net::Signer& signer;
    std::int64_t engine = -1;
    std::chrono::milliseconds period{1000};
    std::chrono::milliseconds controller_timeout{10000};
    std::atomic<bool>& stop;  ///< set when the controller is given up on; also read
    std::atomic<int>& exit_code;
    net::ClockOffset* clock = nullptr;  ///< sampled with every echo (the controller's time in it)
  };
  explicit HeartThread(Options options);
  ~HeartThread();
  HeartThread(const HeartThread&) = delete;
  HeartThread& operator=(const HeartThread&) = delete;

  /// Whether the controller said it does not know this engine (it restarted, or dropped it):
  /// the receiving loop registers again under the same id.
  [[nodiscard]] bool need_register() const noexcept { return need_register_.load(); }
  /// Registered again: the next refusals count afresh.
  void registered() noexcept { need_register_.store(false); }

 private:
  void run();

  Options o_;
  std::atomic<bool> quit_{false};
  std::atomic<bool> need_register_{false};
  std::thread thread_;
};

}  // namespace ipp::engine
