#pragma once

// The engine's registration with its controller: the first one (waiting for an id), asking
// again when the controller forgot the engine, and what the controller's answer means.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include <zmq.hpp>

#include "ipp/net/clock_offset.hpp"
#include "ipp/net/header.hpp"
#include "ipp/net/signer.hpp"

namespace ipp::engine {

/// Speaks on the engine's registration socket (a dealer connected to the hub). The receiving
/// loop owns it after first(): it hands each RegisterReply to answered().
///
///     Registration reg({.socket = s, .signer = signer, .threads = 4, ...});
///     if (!reg.first(stop)) return 0;        // stopped while waiting
///     ... reg.id(), reg.period() ...
///     if (heart.need_register()) reg.again();
///     switch (reg.answered(reply)) { ... }   // a RegisterReply the hub sent
class Registration {
 public:
  struct Options {
    zmq::socket_t& socket;
    const net::Signer& signer;
    std::string endpoint;         ///< the hub's registration endpoint, for errors
    int threads = 1;              ///< the pool's threads, for the load-balanced scheduler
    std::int64_t wanted_id = -1;  ///< an id to register under again (a restarted engine)
    std::chrono::milliseconds heartbeat{1000};  ///< the period unless the controller says
    std::chrono::milliseconds timeout{10000};   ///< first() waits this long for an answer
    net::ClockOffset* clock = nullptr;  ///< sampled with each answer (the controller's time in it)
  };
  explicit Registration(Options options);

  /// Registers and waits for the controller's answer: the engine's id, the controller's
  /// instance and its heartbeat period. False when `stop` was set meanwhile. Throws
  /// ConnectionError when refused or not answered in time.
  bool first(const std::atomic<bool>& stop);

  /// Asks again under the same id (the controller restarted, or declared the engine dead);
  /// at most one attempt per kRetryAfter while one is under way.
  void again(std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now());

  /// What a RegisterReply means once registered.
  enum class Answer : std::uint8_t {
    stale,            ///< an answer to an earlier attempt: nothing to do
    refused,          ///< the controller will not have the engine back (its error is logged)
    same_controller,  ///< the instance that declared the engine dead: its tasks must go
    new_controller,   ///< a restarted controller: results it may have lost are wanted
  };
  Answer answered(const net::Header& reply);

  [[nodiscard]] std::int64_t id() const noexcept { return id_; }
  [[nodiscard]] std::chrono::milliseconds period() const noexcept { return period_; }
  [[nodiscard]] const std::string& controller_session() const noexcept {
    return controller_session_;
  }

  static constexpr auto kRetryAfter = std::chrono::seconds(2);

 private:
  Options o_;
  net::Header hello_;
  std::int64_t id_ = -1;
  std::chrono::milliseconds period_;
  std::string controller_session_;
  std::string again_id_;  // the attempt under way, if any
  std::chrono::steady_clock::time_point again_sent_{};
  std::int64_t again_sent_us_ = 0;  // the same, on the clock the controller's is compared with
};

}  // namespace ipp::engine
