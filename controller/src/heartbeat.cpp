#include "heartbeat.hpp"

#include <algorithm>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "ipp/net/message.hpp"
#include "ipp/net/poll.hpp"

namespace ipp::ctrl {

Heartbeat::Heartbeat(zmq::context_t& ctx, zmq::socket_t& socket, const net::Signer& signer,
                     std::chrono::milliseconds period, const std::string& events_endpoint,
                     const std::string& hub_in_endpoint)
    : socket_(socket),
      signer_(signer),
      events_(ctx, zmq::socket_type::sub),
      hub_in_(ctx, zmq::socket_type::push),
      monitor_(period),
      tick_(std::clamp<std::chrono::milliseconds>(period / 10, std::chrono::milliseconds(5),
                                                  std::chrono::milliseconds(100))) {
  events_.connect(events_endpoint);
  events_.set(zmq::sockopt::subscribe, "");
  hub_in_.connect(hub_in_endpoint);
}

void Heartbeat::on_pings(HeartMonitor::Clock::time_point now) {
  try {
    while (auto env = net::recv(socket_, signer_, zmq::recv_flags::dontwait)) {
      net::Header h = net::decode_header(env->parts.at(0));
      if (monitor_.ping(h.engine, now)) {
        // Echoed with this clock's time (in `completed`; `submitted` is the engine's, as it
        // sent it): the engine knows we are alive, and how far our clocks are apart.
        h.completed = net::now_us();
        net::Envelope echo = net::make_message(h);
        echo.route = std::move(env->route);
        net::send(socket_, signer_, echo, true);
        continue;
      }
      // Not registered here (this controller restarted, or dropped it): say so, and the engine
      // registers again under its id.
      net::Header r;
      r.type = net::MsgType::Ping;
      r.engine = h.engine;
      r.error = make_error_record(ErrorCode::engine,
                                  fmt::format("engine {} is not registered", h.engine));
      net::Envelope out = net::make_message(r);
      out.route = std::move(env->route);
      net::send(socket_, signer_, out, true);
    }
  } catch (const std::exception& e) {
    if (std::uint64_t more = 0; dropped_.allow(more))
      spdlog::warn("heartbeat monitor dropped a message: {}{}", e.what(), LogLimiter::more(more));
  }
}

void Heartbeat::run(const std::atomic<bool>& stopping) {
  zmq::pollitem_t items[] = {{socket_.handle(), 0, ZMQ_POLLIN, 0},
                             {events_.handle(), 0, ZMQ_POLLIN, 0}};
  while (!stopping.load()) {
    // A signal interrupting the poll is "nothing happened": the loop re-checks its stop flag.
    if (net::poll(items, 2, tick_) < 0) continue;
    const auto now = HeartMonitor::Clock::now();
    if (items[1].revents & ZMQ_POLLIN) {
      while (auto event = EngineEvent::receive(events_))
        monitor_.on_event(*event, now);
    }
    if (items[0].revents & ZMQ_POLLIN) on_pings(now);
    for (const auto id : monitor_.tick(now))
      EngineEvent::silent(id).send(hub_in_);
    if (monitor_.last_stall() > std::chrono::milliseconds(0)) {
      // This thread was not scheduled for a while (a loaded machine): the silence was ours,
      // not the engines', so nobody was blamed for it.
      spdlog::debug(
          "heartbeat monitor stalled for {} ms",
          std::chrono::duration_cast<std::chrono::milliseconds>(monitor_.last_stall()).count());
    }
  }
}

}  // namespace ipp::ctrl
