#pragma once

// A scheduler under test with real inproc sockets in one process: the hub's side (engine
// events on an XPUB, the wake-ups of the traffic feed), a client and engines as DEALERs.

#include <gtest/gtest.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "events.hpp"
#include "ipp/net/message.hpp"
#include "relay.hpp"
#include "traffic.hpp"

namespace ipp::ctrl::test {

using namespace std::chrono_literals;

class SchedulerRig {
 public:
  zmq::context_t ctx;
  TrafficFeed traffic;
  net::Signer client_signer{net::Signer::new_key()};  // clients and engines: two keys
  net::Signer engine_signer{net::Signer::new_key()};
  zmq::socket_t events{ctx, zmq::socket_type::xpub};
  zmq::socket_t monitor{ctx, zmq::socket_type::pull};
  zmq::socket_t client_side{ctx, zmq::socket_type::router};
  zmq::socket_t engine_side{ctx, zmq::socket_type::router};
  zmq::socket_t client{ctx, zmq::socket_type::dealer};

  SchedulerRig() {
    events.bind("inproc://rig-events");
    monitor.bind("inproc://rig-monitor");
    for (auto* s : {&client_side, &engine_side}) {
      s->set(zmq::sockopt::sndhwm, 0);
      s->set(zmq::sockopt::rcvhwm, 0);
    }
    engine_side.set(zmq::sockopt::router_mandatory, true);
    client_side.bind("inproc://rig-clients");
    engine_side.bind("inproc://rig-engines");
    client.connect("inproc://rig-clients");
  }

  [[nodiscard]] RelayWiring wiring() {
    return {ctx,
            traffic,
            nullptr,
            client_signer,
            engine_signer,
            "inproc://rig-events",
            "inproc://rig-monitor",
            "test-instance"};
  }

  /// Waits until the scheduler's SUB socket has subscribed: events published after this
  /// reach it.
  void await_subscriber() {
    zmq::pollitem_t item{events.handle(), 0, ZMQ_POLLIN, 0};
    ASSERT_GT(zmq::poll(&item, 1, 2000ms), 0) << "the scheduler never subscribed";
    zmq::message_t sub;
    ASSERT_TRUE(events.recv(sub, zmq::recv_flags::dontwait));
  }

  void publish(const EngineEvent& e) { e.send(events); }

  /// The DEALER of engine `id` (routing id "e<id>", as engines name themselves), made on first
  /// use.
  zmq::socket_t& engine(std::int64_t id) {
    auto& s = engines_[id];
    if (!s) {
      s = std::make_unique<zmq::socket_t>(ctx, zmq::socket_type::dealer);
      s->set(zmq::sockopt::routing_id, fmt::format("e{}", id));
      s->connect("inproc://rig-engines");
    }
    return *s;
  }
  /// Engine `id` says hello on the scheduler's channel.
  void hello(std::int64_t id) {
    net::Header h;
    h.type = net::MsgType::Ping;
    h.engine = id;
    net::send(engine(id), engine_signer, net::make_message(h));
  }
  /// The client submits an apply of `task` for `target` (-1: any); returns its msg_id.
  std::string submit(std::int64_t target, std::string task = "arith.mul",
                     std::int64_t timeout_ms = 0) {
    net::Header h;
    h.type = net::MsgType::ApplyRequest;
    h.msg_id = net::new_id();
    h.task = std::move(task);
    h.target = target;
    h.timeout_ms = timeout_ms;
    net::send(client, client_signer, net::make_message(h));
    return h.msg_id;
  }
  /// The client asks to abort `ids`.
  void abort(const std::vector<std::string>& ids) { control("abort", ids); }
  /// The client sends the control `what` (abort, cancel, probe) naming `ids`.
  void control(const std::string& what, const std::vector<std::string>& ids) {
    net::Header h;
    h.type = net::MsgType::ControlRequest;
    h.msg_id = net::new_id();
    h.task = what;
    Value::List list;
    for (const auto& id : ids)
      list.emplace_back(id);
    h.info = Value(std::move(list));
    net::send(client, client_signer, net::make_message(h));
  }
  /// Engine `id` answers task `parent` with a result (no error).
  void answer(std::int64_t id, const std::string& parent) {
    net::Header h;
    h.type = net::MsgType::TaskReply;
    h.msg_id = net::new_id();
    h.parent_id = parent;
    h.engine = id;
    h.task = "arith.mul";
    net::send(engine(id), engine_signer, net::make_message(h));
  }

  /// Every message waiting for `peer`, after up to `wait` for the first.
  std::vector<net::Header> received(zmq::socket_t& peer, std::chrono::milliseconds wait = 2000ms) {
    std::vector<net::Envelope> in;
    zmq::pollitem_t item{peer.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, wait) > 0) {
      while (net::recv_all(peer, &peer == &client ? client_signer : engine_signer, in,
                           zmq::recv_flags::dontwait)) {
      }
    }
    std::vector<net::Header> out;
    for (auto& env : in)
      out.push_back(net::decode_header(env.parts.at(0)));
    return out;
  }

 private:
  std::map<std::int64_t, std::unique_ptr<zmq::socket_t>> engines_;
};

/// Runs a few short turns of `scheduler`, enough for what was sent to it to be handled.
template <typename Scheduler>
void turns(Scheduler& scheduler, int n = 5) {
  for (int i = 0; i < n; ++i)
    scheduler.turn(10ms);
}

}  // namespace ipp::ctrl::test
