#include "relay.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "ipp/net/message.hpp"
#include "replies.hpp"

namespace ipp::ctrl {

std::vector<std::string> control_ids(const net::Header& h) {
  std::vector<std::string> ids;
  if (h.info.kind() != Value::Kind::list) return ids;
  for (const auto& v : h.info.as_list()) {
    if (v.kind() == Value::Kind::string) ids.push_back(v.as_string());
  }
  return ids;
}

void run_turns(const std::atomic<bool>& stopping, const char* name,
               const std::function<void()>& turn) {
  LogLimiter failed;
  while (!stopping.load()) {
    try {
      turn();
    } catch (const std::exception& e) {
      if (std::uint64_t more = 0; failed.allow(more))
        spdlog::error("{}: a turn failed: {}{}", name, e.what(), LogLimiter::more(more));
    }
  }
}

Relay::Relay(const RelayWiring& wiring, zmq::socket_t& clients, zmq::socket_t& workers,
             const char* name)
    : traffic_(wiring.traffic),
      shm_(wiring.shm),
      client_signer_(wiring.client_signer),
      engine_signer_(wiring.engine_signer),
      clients_(clients),
      workers_(workers),
      events_(wiring.ctx, zmq::socket_type::sub),
      monitor_(wiring.ctx, zmq::socket_type::push),
      name_(name),
      instance_(wiring.instance) {
  events_.connect(wiring.events_endpoint);
  events_.set(zmq::sockopt::subscribe, "");
  // Wakes the hub when copies of the traffic wait for it (see TrafficFeed).
  monitor_.set(zmq::sockopt::sndhwm, 0);
  monitor_.set(zmq::sockopt::linger, 0);
  monitor_.connect(wiring.monitor_endpoint);
}

void Relay::reply_error(std::uint32_t client, const std::string& parent, ErrorRecord err) {
  const std::int64_t engine = err.engine;
  net::Envelope out = task_error_reply(parent, std::move(err));
  feed_reply(engine, out);
  to_client(client, std::move(out));
}

std::vector<std::pair<std::int64_t, net::TaskId>> Relay::flush() {
  traffic_.push(copies_, monitor_);
  std::vector<std::pair<std::int64_t, net::TaskId>> unreachable;
  for (auto it = engine_box_.begin(); it != engine_box_.end();) {
    auto& [engine, box] = *it;
    if (box.messages.empty()) {
      it = engine_box_.erase(it);
      continue;
    }
    if (box.route.empty()) box.route.emplace_back(fmt::format("e{}", engine));
    const bool maps = engine_maps_[engine];
    for (std::size_t from = 0; from < box.messages.size(); from += kMaxBatch) {
      const std::size_t n = std::min(kMaxBatch, box.messages.size() - from);
      if (net::send_batch(workers_, engine_signer_, box.route,
                          std::span<const net::Envelope>(box.messages).subspan(from, n), true,
                          {shm_, maps}))
        continue;
      for (std::size_t i = from; i < from + n; ++i) {
        if (box.msg_ids[i]) unreachable.emplace_back(engine, *box.msg_ids[i]);
      }
    }
    box.messages.clear();
    box.msg_ids.clear();
    ++it;
  }
  for (auto it = client_box_.begin(); it != client_box_.end();) {
    auto& [client, messages] = *it;
    if (messages.empty()) {
      it = client_box_.erase(it);
      continue;
    }
    for (std::size_t from = 0; from < messages.size(); from += kMaxBatch) {
      const std::size_t n = std::min(kMaxBatch, messages.size() - from);
      net::send_batch(clients_, client_signer_, book.route(client),
                      std::span<const net::Envelope>(messages).subspan(from, n), true,
                      {shm_, book.maps(client)});
    }
    messages.clear();
    ++it;
  }
  return unreachable;
}

bool Relay::receive(zmq::socket_t& sock, std::vector<std::pair<net::Envelope, net::Header>>& out) {
  out.clear();
  auto& in = received_;
  in.clear();
  while (true) {
    try {
      const net::Signer& signer = &sock == &clients_ ? client_signer_ : engine_signer_;
      if (!net::recv_all(sock, signer, in, zmq::recv_flags::dontwait, shm_,
                         net::Unverified::answer))
        return false;
      break;
    } catch (const ProtocolError& e) {
      if (std::uint64_t more = 0; dropped_.allow(more))
        spdlog::warn("{} dropped a message: {}{}", name_, e.what(), LogLimiter::more(more));
    }
  }
  for (auto& env : in) {
    try {
      net::Header h = net::decode_header(env.parts.at(0));
      // One whose signature does not verify is answered when it is a client's task or an
      // engine's reply (its caller learns of it instead of waiting); anything else goes.
      if (!env.verified && (!(&sock == &clients_ ? net::is_task_request(h.type)
                                                 : h.type == net::MsgType::TaskReply) ||
                            !unverified_answers_.take())) {
        throw ProtocolError(env.unreadable);
      }
      if (std::uint64_t more = 0; !env.verified && answered_.allow(more)) {
        spdlog::warn("{} answers a {} whose {}{}", name_, net::to_string(h.type), env.unreadable,
                     LogLimiter::more(more));
      }
      out.emplace_back(std::move(env), std::move(h));
    } catch (const std::exception& e) {
      if (std::uint64_t more = 0; dropped_.allow(more))
        spdlog::warn("{} dropped a message: {}{}", name_, e.what(), LogLimiter::more(more));
    }
  }
  return true;
}

bool Relay::AnswerBudget::take() {
  const auto now = std::chrono::steady_clock::now();
  tokens =
      std::min(kBurst, tokens + kPerSecond * std::chrono::duration<double>(now - last).count());
  last = now;
  if (tokens < 1) return false;
  tokens -= 1;
  return true;
}

std::optional<net::TaskId> Relay::task_id(std::uint32_t client, const net::Header& h,
                                          const net::Envelope& env) {
  if (!is_task_request(h.type)) {
    spdlog::warn("{}: unexpected {}", name_, net::to_string(h.type));
    return std::nullopt;
  }
  auto id = net::TaskId::parse(h.msg_id);
  if (id && h.task.size() > net::kMaxTaskNameBytes) {
    // Answered here: an engine could not even put such a name into its reply.
    const std::string shown = net::shown_task_name(h.task);
    reply_error(client, *id,
                make_error_record(ErrorCode::usage,
                                  fmt::format("task name '{}' is longer than the {} bytes allowed",
                                              shown, net::kMaxTaskNameBytes),
                                  shown));
    return std::nullopt;
  }
  if (!id) {
    reply_error(client, h.msg_id,
                make_error_record(ErrorCode::usage,
                                  fmt::format("msg_id '{}' is not 32 lowercase hex digits",
                                              h.msg_id.substr(0, 64))));
  } else if (!env.unreadable.empty()) {
    reply_error(client, *id,
                make_error_record(ErrorCode::protocol,
                                  fmt::format("the request for task '{}' could not be read by "
                                              "the controller: {}",
                                              h.task, env.unreadable),
                                  h.task));
    return std::nullopt;
  }
  return id;
}

void Relay::from_engine(net::Envelope& env, net::Header& h) {
  engine_maps_[h.engine] = env.peer_maps;
  if (env.unreadable.empty() || h.type != net::MsgType::TaskReply) return;
  h.error =
      make_error_record(ErrorCode::protocol,
                        fmt::format("the result of task '{}' from engine {} could not be read: {}",
                                    h.task, h.engine, env.unreadable),
                        h.task, h.engine);
  net::Header r = h;
  r.msg_id = net::new_id();
  env = net::make_message(r);
}

void Relay::control_engine(std::int64_t engine, const std::string& what,
                           const std::vector<std::string>& ids) {
  net::Header c;
  c.type = net::MsgType::ControlRequest;
  c.msg_id = net::new_id();
  c.task = what;
  Value::List list;
  for (const auto& id : ids)
    list.emplace_back(id);
  c.info = Value(std::move(list));
  to_engine(engine, std::nullopt, net::make_message(c));
}

void Relay::control_reply(std::uint32_t client, const net::Header& h,
                          const std::vector<std::string>& removed,
                          const std::vector<std::string>& signalled) {
  auto list = [](const std::vector<std::string>& ids) {
    Value::List l;
    for (const auto& id : ids)
      l.emplace_back(id);
    return Value(std::move(l));
  };
  net::Header r = ctrl::reply_header(net::MsgType::ControlReply, h.msg_id);
  r.session = instance_;
  r.info = Value::map({{"removed", list(removed)}, {"signalled", list(signalled)}});
  to_client(client, net::make_message(r));
}

}  // namespace ipp::ctrl
