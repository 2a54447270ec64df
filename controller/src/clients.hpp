#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include <zmq.hpp>

namespace ipp::ctrl {

/// The clients a scheduler has heard from, each route kept once: a queued task names its
/// client by a number instead of holding a copy of the route.
///
/// Not thread-safe: each scheduler owns one.
class Clients {
 public:
  /// The number of the client at `route`; `maps`: it takes shared-memory parts (as its
  /// latest message says).
  std::uint32_t intern(const std::vector<zmq::message_t>& route, bool maps);
  /// The route of client number `client`. Throws std::out_of_range for a number never given.
  [[nodiscard]] const std::vector<zmq::message_t>& route(std::uint32_t client) const {
    return routes_.at(client);
  }
  /// Whether client number `client` takes shared-memory parts.
  [[nodiscard]] bool maps(std::uint32_t client) const { return maps_.at(client); }
  /// How many clients have been seen.
  [[nodiscard]] std::size_t size() const noexcept { return routes_.size(); }

 private:
  std::unordered_map<std::string, std::uint32_t> index_;
  std::vector<std::vector<zmq::message_t>> routes_;
  std::vector<bool> maps_;
};

}  // namespace ipp::ctrl
