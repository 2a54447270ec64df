#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>

#include <zmq.hpp>

#include "ipp/net/connection_file.hpp"
#include "ipp/net/header.hpp"
#include "ipp/net/signer.hpp"
#include "ipp/value.hpp"

namespace ipp::ctl {

/// `v[key]` when `v` is a map holding a string there; `otherwise` else (answers from older
/// peers may lack a field).
inline std::string string_field(const Value& v, std::string_view key, std::string otherwise) {
  if (v.kind() != Value::Kind::map) return otherwise;
  const auto& m = v.as_map();
  const auto it = m.find(std::string(key));
  return it != m.end() && it->second.kind() == Value::Kind::string ? it->second.as_string()
                                                                   : otherwise;
}

/// A signed query connection (a DEALER) to the hub's registration channel, or to a
/// supervisor's control socket: what ippctl's cluster commands and the supervisor use to ask
/// for things the client library does not offer. Not thread-safe.
class HubLink {
 public:
  /// The hub of the profile's client connection file. Throws ConnectionError when the file
  /// is missing or malformed.
  explicit HubLink(const std::filesystem::path& profile);
  /// Any endpoint speaking the same envelopes with `key`, encrypted with `curve` when on.
  HubLink(const std::string& endpoint, const std::string& key, const net::CurveKeys& curve = {});

  /// Sends query `name` with `info` and waits up to `timeout` for its reply (nullopt when
  /// none came). With `patient`, the wait goes on for as long as the peer keeps answering a
  /// probe (`ids`) sent every second: for answers that come when something has finished.
  std::optional<net::Header> query(const std::string& name, const Value& info,
                                   std::chrono::milliseconds timeout, bool patient = false);

 private:
  net::Signer signer_;
  zmq::context_t ctx_{1};
  zmq::socket_t socket_{ctx_, zmq::socket_type::dealer};
};

}  // namespace ipp::ctl
