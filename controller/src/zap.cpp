#include "zap.hpp"

#include <spdlog/spdlog.h>
#include <zmq_addon.hpp>

#include "ipp/net/curve.hpp"
#include "ipp/net/poll.hpp"
#include "log_limiter.hpp"

namespace ipp::ctrl {

namespace {
constexpr const char* kZapEndpoint = "inproc://zeromq.zap.01";  // fixed by RFC 27
}  // namespace

ZapHandler::ZapHandler(const std::vector<zmq::context_t*>& contexts,
                       const std::string& client_public, const std::string& engine_public)
    : client_key_(net::curve_key_bytes(client_public)),
      engine_key_(net::curve_key_bytes(engine_public)) {
  for (auto* ctx : contexts) {
    sockets_.emplace_back(*ctx, zmq::socket_type::rep);
    sockets_.back().set(zmq::sockopt::linger, 0);
    sockets_.back().bind(kZapEndpoint);
  }
}

std::string ZapHandler::decide(const std::string& domain, const std::string& key) const {
  const bool client = key == client_key_;
  const bool engine = key == engine_key_;
  if (domain == kClients) return client ? "client" : "";
  if (domain == kEngines) return engine ? "engine" : "";
  if (domain == kRegistration) return client ? "client" : engine ? "engine" : "";
  return "";
}

// A request: version, request id, domain, address, routing id, mechanism, credentials (for
// CURVE the client's 32-byte public key). The reply: version, request id, status code, status
// text, user id, metadata.
void ZapHandler::answer(zmq::socket_t& socket) {
  std::vector<zmq::message_t> request;
  if (!zmq::recv_multipart(socket, std::back_inserter(request), zmq::recv_flags::dontwait)) return;
  auto frame = [&](std::size_t i) {
    return i < request.size() ? request[i].to_string() : std::string();
  };
  std::string user;
  if (request.size() >= 7 && frame(0) == "1.0" && frame(5) == "CURVE")
    user = decide(frame(2), frame(6));
  if (std::uint64_t more = 0; user.empty() && refused_.allow(more)) {
    spdlog::warn("refused a connection from {} on {}: its key is not allowed there{}", frame(3),
                 frame(2), LogLimiter::more(more));
  }
  std::vector<zmq::message_t> reply;
  reply.emplace_back(std::string_view("1.0"));
  reply.emplace_back(frame(1));
  reply.emplace_back(std::string_view(user.empty() ? "400" : "200"));
  reply.emplace_back(std::string_view(user.empty() ? "key not allowed" : "OK"));
  reply.emplace_back(user);
  reply.emplace_back();
  (void)zmq::send_multipart(socket, reply);
}

void ZapHandler::run(const std::atomic<bool>& stopping) {
  std::vector<zmq::pollitem_t> items;
  for (auto& s : sockets_)
    items.push_back({s.handle(), 0, ZMQ_POLLIN, 0});
  while (!stopping.load()) {
    if (net::poll(items.data(), items.size(), std::chrono::milliseconds(100)) <= 0) continue;
    for (std::size_t i = 0; i < items.size(); ++i) {
      if (items[i].revents & ZMQ_POLLIN) answer(sockets_[i]);
    }
  }
}

}  // namespace ipp::ctrl
