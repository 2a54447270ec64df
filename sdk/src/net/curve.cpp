#include "ipp/net/curve.hpp"

#include <fmt/format.h>

#include "ipp/error.hpp"

namespace ipp::net {

CurvePair CurvePair::generate() {
  char public_key[41] = {};
  char secret_key[41] = {};
  if (zmq_curve_keypair(public_key, secret_key) != 0)
    throw ConnectionError("this libzmq cannot make CURVE keys (built without libsodium?)");
  return {public_key, secret_key};
}

std::string curve_key_bytes(const std::string& z85) {
  std::string out(32, '\0');
  if (z85.size() != 40 ||
      zmq_z85_decode(reinterpret_cast<std::uint8_t*>(out.data()), z85.c_str()) == nullptr)
    throw ConnectionError(fmt::format("'{}' is not a CURVE key (40 Z85 characters)", z85));
  return out;
}

void secure_client(zmq::socket_ref socket, const CurveKeys& keys) {
  if (!keys.on()) return;
  for (const auto* k : {&keys.server_key, &keys.public_key, &keys.secret_key})
    (void)curve_key_bytes(*k);
  socket.set(zmq::sockopt::curve_serverkey, keys.server_key);
  socket.set(zmq::sockopt::curve_publickey, keys.public_key);
  socket.set(zmq::sockopt::curve_secretkey, keys.secret_key);
}

void secure_server(zmq::socket_ref socket, const std::string& secret_key, const char* domain) {
  (void)curve_key_bytes(secret_key);
  socket.set(zmq::sockopt::curve_server, true);
  socket.set(zmq::sockopt::curve_secretkey, secret_key);
  socket.set(zmq::sockopt::zap_domain, domain);
}

}  // namespace ipp::net
