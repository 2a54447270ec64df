#include "heart_thread.hpp"

#include <algorithm>

#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "engine_heart.hpp"
#include "ipp/error.hpp"
#include "ipp/net/address.hpp"
#include "ipp/net/engine_exit.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/header.hpp"
#include "ipp/net/message.hpp"

namespace ipp::engine {

HeartThread::HeartThread(Options options) : o_(std::move(options)), thread_([this] { run(); }) {}

HeartThread::~HeartThread() {
  quit_.store(true);
  thread_.join();
}

void HeartThread::run() {
  using Steady = std::chrono::steady_clock;
  zmq::context_t ctx;
  zmq::socket_t heartbeat(ctx, zmq::socket_type::dealer);
  heartbeat.set(zmq::sockopt::routing_id, o_.identity);
  heartbeat.set(zmq::sockopt::linger, 0);
  net::connect(heartbeat, o_.endpoint, o_.curve);
  EngineHeart beat(o_.period, o_.controller_timeout, Steady::now());
  zmq::pollitem_t item{heartbeat.handle(), 0, ZMQ_POLLIN, 0};
  while (!quit_.load() && !o_.stop.load()) {
    const auto now = Steady::now();
    if (beat.ping_due(now)) {
      net::Header ping;
      ping.type = net::MsgType::Ping;
      ping.engine = o_.engine;
      ping.submitted = net::now_us();
      net::send(heartbeat, o_.signer, net::make_message(ping), true);
    }
    if (beat.given_up(now)) {
      spdlog::warn("engine {}: controller silent for {} ms; exiting", o_.engine,
                   beat.timeout().count());
      o_.exit_code.store(net::kEngineLostController);
      o_.stop.store(true);
      break;
    }
    const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(beat.until_ping(now));
    try {
      zmq::poll(&item, 1,
                std::clamp(wait, std::chrono::milliseconds(1), std::chrono::milliseconds(100)));
      if (item.revents & ZMQ_POLLIN) {
        while (auto env = net::recv(heartbeat, o_.signer, zmq::recv_flags::dontwait)) {
          const net::Header h = net::decode_header(env->parts.at(0));
          if (beat.heard(Steady::now(), h.error.has_value())) need_register_.store(true);
          if (o_.clock != nullptr && !h.error)
            o_.clock->sample(h.submitted, h.completed, net::now_us());
        }
      }
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) spdlog::error("engine {} heartbeat: {}", o_.engine, e.what());
    } catch (const ProtocolError& e) {
      spdlog::warn("engine {} dropped a heartbeat: {}", o_.engine, e.what());
    }
  }
}

}  // namespace ipp::engine
