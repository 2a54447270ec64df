#include "registration.hpp"

#include <unistd.h>

#include <algorithm>
#include <optional>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "ipp/error.hpp"
#include "ipp/net/address.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/message.hpp"

namespace ipp::engine {

Registration::Registration(Options options) : o_(std::move(options)), period_(o_.heartbeat) {
  hello_.type = net::MsgType::RegisterRequest;
  hello_.msg_id = net::new_id();
  hello_.session = net::new_id();
  hello_.threads = o_.threads;
  hello_.info =
      Value::map({{"pid", static_cast<std::int64_t>(::getpid())}, {"host", net::host_name()}});
  hello_.engine = o_.wanted_id;
}

namespace {

/// The controller's time in a RegisterReply, 0 when it says none.
std::int64_t controller_time(const net::Header& reply) {
  if (reply.info.kind() != Value::Kind::map) return 0;
  const auto& m = reply.info.as_map();
  const auto it = m.find("now_us");
  return it != m.end() && it->second.kind() == Value::Kind::integer ? it->second.as_int() : 0;
}

}  // namespace

bool Registration::first(const std::atomic<bool>& stop) {
  const std::int64_t sent = net::now_us();
  net::send(o_.socket, o_.signer, net::make_message(hello_));
  const auto deadline = std::chrono::steady_clock::now() + o_.timeout;
  o_.socket.set(zmq::sockopt::rcvtimeo, 100);
  while (id_ < 0) {
    if (stop.load()) return false;
    if (std::chrono::steady_clock::now() > deadline) {
      throw ConnectionError(fmt::format("no answer from the controller at {} within {} ms",
                                        o_.endpoint, o_.timeout.count()));
    }
    try {
      auto env = net::recv(o_.socket, o_.signer);
      if (!env) continue;
      const net::Header h = net::decode_header(env->parts.at(0));
      if (h.type != net::MsgType::RegisterReply || h.parent_id != hello_.msg_id) continue;
      if (h.error) throw ConnectionError("registration refused: " + h.error->message);
      id_ = h.engine;
      controller_session_ = h.session;
      if (o_.clock != nullptr) o_.clock->sample(sent, controller_time(h), net::now_us());
      // Engines ping by the controller's period, whatever their own command line says.
      if (h.info.kind() == Value::Kind::map && h.info.as_map().contains("heartbeat_ms"))
        period_ =
            std::chrono::milliseconds(std::max<std::int64_t>(4, h.info["heartbeat_ms"].as_int()));
    } catch (const ProtocolError& e) {
      spdlog::warn("dropped a message during registration: {}", e.what());
    }
  }
  return true;
}

void Registration::again(std::chrono::steady_clock::time_point now) {
  if (!again_id_.empty() && now - again_sent_ < kRetryAfter) return;  // one under way
  net::Header h = hello_;
  h.msg_id = again_id_ = net::new_id();
  h.engine = id_;
  again_sent_ = now;
  again_sent_us_ = net::now_us();
  spdlog::warn("engine {}: the controller does not know this engine; registering again", id_);
  net::send(o_.socket, o_.signer, net::make_message(h), true);
}

Registration::Answer Registration::answered(const net::Header& reply) {
  if (again_id_.empty() || reply.parent_id != again_id_) return Answer::stale;
  again_id_.clear();
  if (o_.clock != nullptr) o_.clock->sample(again_sent_us_, controller_time(reply), net::now_us());
  if (reply.error) {
    spdlog::error("engine {} cannot register again: {}", id_, reply.error->message);
    return Answer::refused;
  }
  if (!reply.session.empty() && reply.session == controller_session_)
    return Answer::same_controller;
  controller_session_ = reply.session;
  return Answer::new_controller;
}

}  // namespace ipp::engine
