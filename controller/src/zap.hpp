#pragma once

#include <atomic>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "log_limiter.hpp"

namespace ipp::ctrl {

/// The controller's ZAP handler (ZeroMQ RFC 27): ZeroMQ asks it about every CURVE handshake
/// on the controller's sockets, and it lets in the clients' key where clients connect, the
/// engines' key where engines do, and either on the registration channel. Anyone else, even
/// holding the server's public key, is refused before a single message is read.
///
///     ZapHandler zap({&ctx, &heart_ctx}, client_public, engine_public);  // before binding
///     zap.run(stopping);                                                  // on its thread
///
/// Not thread-safe: made on one thread, then run on another (the sockets move with it).
class ZapHandler {
 public:
  /// The ZeroMQ domains the controller's sockets give (see net::secure_server).
  static constexpr const char* kClients = "ipp-clients";
  static constexpr const char* kEngines = "ipp-engines";
  static constexpr const char* kRegistration = "ipp-registration";

  /// Binds the handler's endpoint in each context: before any CURVE server socket of them
  /// binds, or handshakes would pass unchecked. Keys are Z85; throws ConnectionError when
  /// one is not a key.
  ZapHandler(const std::vector<zmq::context_t*>& contexts, const std::string& client_public,
             const std::string& engine_public);

  /// Answers requests until `stopping` is set.
  void run(const std::atomic<bool>& stopping);

  /// The verdict for one handshake: the user id ("client" or "engine") to let it in under,
  /// or empty to refuse it.
  [[nodiscard]] std::string decide(const std::string& domain, const std::string& key) const;

 private:
  void answer(zmq::socket_t& socket);

  std::vector<zmq::socket_t> sockets_;
  std::string client_key_;  // 32 bytes
  std::string engine_key_;
  LogLimiter refused_;
};

}  // namespace ipp::ctrl
