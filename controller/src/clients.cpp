#include "clients.hpp"

#include "ipp/net/envelope.hpp"

namespace ipp::ctrl {

std::uint32_t Clients::intern(const std::vector<zmq::message_t>& route, bool maps) {
  std::string key;
  for (const auto& r : route) {
    key.append(static_cast<const char*>(r.data()), r.size());
    key.push_back('\0');
  }
  auto [it, fresh] = index_.try_emplace(std::move(key), static_cast<std::uint32_t>(routes_.size()));
  if (fresh) {
    routes_.push_back(net::copy_route(route));
    maps_.push_back(maps);
  }
  maps_[it->second] = maps;
  return it->second;
}

}  // namespace ipp::ctrl
