#pragma once

// Encryption on the wire: ZeroMQ's CURVE (CurveZMQ, libsodium's Curve25519, XSalsa20 and
// Poly1305). A controller's sockets are CURVE servers holding the cluster's server key; each
// client and engine connects with the server's public key and a key pair of its own (the
// clients' pair, or the engines'), which the controller checks in its ZAP handler.

#include <string>

#include <zmq.hpp>

namespace ipp::net {

/// A Curve25519 key pair, Z85-encoded (40 characters each).
struct CurvePair {
  std::string public_key;
  std::string secret_key;

  /// A fresh random pair.
  [[nodiscard]] static CurvePair generate();
};

/// What a peer needs to connect encrypted: the controller's public key and its own pair. All
/// empty: the controller does not encrypt.
struct CurveKeys {
  std::string server_key;
  std::string public_key;
  std::string secret_key;

  [[nodiscard]] bool on() const noexcept { return !server_key.empty(); }
};

/// Makes `socket` connect as a CURVE client with `keys`, when they are on; else nothing. Call
/// before connecting. Throws ConnectionError for a malformed key.
void secure_client(zmq::socket_ref socket, const CurveKeys& keys);

/// Makes `socket` a CURVE server with `secret_key`, its peers checked by the ZAP handler under
/// `domain`. Call before binding.
void secure_server(zmq::socket_ref socket, const std::string& secret_key, const char* domain);

/// The 32 bytes a Z85 key stands for; throws ConnectionError when `z85` is not a key.
[[nodiscard]] std::string curve_key_bytes(const std::string& z85);

}  // namespace ipp::net
