#include "ipp/runtime/engine.hpp"

#include <unistd.h>

#include <algorithm>
#include <deque>
#include <mutex>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "ipp/codec.hpp"
#include "ipp/net/connection_file.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/header.hpp"
#include "ipp/net/message.hpp"
#include "ipp/runtime/runtime.hpp"

namespace ipp {

namespace {

using Steady = std::chrono::steady_clock;

std::filesystem::path default_store() {
  return std::filesystem::temp_directory_path() / fmt::format("ipp-engine-{}", ::getpid());
}

/// A client's namespace request: "push" (a map of name -> value), "pull" (a list of names;
/// replies with the list of values) or "clear".
TaskOutcome namespace_op(Runtime& runtime, const std::string& op, const Payload& payload,
                         std::int64_t engine) {
  TaskOutcome out;
  out.started = Clock::now();
  auto fail = [&](ErrorCode code, const char* type, std::string message) {
    ErrorRecord r;
    r.code = code;
    r.type = type;
    r.message = std::move(message);
    r.task = op;
    r.engine = engine;
    out.error = std::move(r);
  };
  try {
    if (op == "push") {
      const Value values = decode(payload);
      for (const auto& [name, value] : values.as_map()) {
        if (value.kind() == Value::Kind::ref) {
          fail(ErrorCode::argument, "ipp::ArgumentError",
               fmt::format("cannot bind '{}' to a reference", name));
          break;
        }
      }
      if (out.ok()) {
        for (const auto& [name, value] : values.as_map())
          runtime.ns().set(name, value);
      }
    } else if (op == "pull") {
      const Value names = decode(payload);
      Value::List values;
      for (const auto& n : names.as_list()) {
        auto v = runtime.ns().get(n.as_string());
        if (!v) {
          fail(ErrorCode::name_error, "ipp::NameError",
               fmt::format("name '{}' is not defined on engine {}", n.as_string(), engine));
          break;
        }
        values.push_back(std::move(*v));
      }
      if (out.ok()) out.result = encode(Value(std::move(values)));
    } else if (op == "clear") {
      runtime.clear_namespace();
    } else {
      fail(ErrorCode::usage, "ipp::UsageError",
           fmt::format("unknown namespace operation '{}'", op));
    }
  } catch (const Error& e) {
    fail(e.code(), e.code() == ErrorCode::protocol ? "ipp::ProtocolError" : "ipp::ArgumentError",
         e.what());
  }
  out.completed = Clock::now();
  return out;
}

}  // namespace

struct Engine::Impl {
  // Results finished on pool threads wait here for the I/O thread, which alone owns the
  // sockets; a one-byte message on an inproc socket wakes it.
  struct Outgoing {
    int channel;  // 0 direct, 1 balanced
    net::Envelope envelope;
  };
  std::mutex out_mutex;
  std::deque<Outgoing> outgoing;
  zmq::socket_t* wake = nullptr;  // guarded by out_mutex
};

Engine::Engine(EngineOptions options) : options_(std::move(options)) {}
Engine::~Engine() = default;

int Engine::run() {
  const net::ConnectionInfo conn = net::read_connection_file(options_.connection_file);
  const net::Signer signer(conn.key);
  const auto store = options_.store_dir.empty() ? default_store() : options_.store_dir;
  Runtime runtime({.threads = options_.threads, .store_dir = store});
  for (const auto& p : options_.builtin_plugins) {
    try {
      runtime.load(p);
    } catch (const Error& e) {
      spdlog::warn("built-in plugin {} not loaded: {}", p.string(), e.what());
    }
  }

  zmq::context_t ctx;
  zmq::socket_t reg(ctx, zmq::socket_type::dealer);
  reg.set(zmq::sockopt::linger, 0);
  reg.connect(conn.endpoint("registration"));

  const std::string session = net::new_id();
  net::Header hello;
  hello.type = net::MsgType::RegisterRequest;
  hello.msg_id = net::new_id();
  hello.session = session;
  hello.threads = runtime.executor().threads();
  hello.info = Value::map({{"pid", static_cast<std::int64_t>(::getpid())}});
  hello.engine = options_.engine_id;
  net::send(reg, signer, net::make_message(hello));

  // Registration: wait for our id.
  std::int64_t id = -1;
  auto period = options_.heartbeat;
  const auto register_deadline = Steady::now() + options_.register_timeout;
  reg.set(zmq::sockopt::rcvtimeo, 100);
  while (id < 0) {
    if (stop_.load()) return 0;
    if (Steady::now() > register_deadline) {
      throw ConnectionError(fmt::format("no answer from the controller at {} within {} ms",
                                        conn.endpoint("registration"),
                                        options_.register_timeout.count()));
    }
    try {
      auto env = net::recv(reg, signer);
      if (!env) continue;
      const net::Header h = net::decode_header(env->parts.at(0));
      if (h.type != net::MsgType::RegisterReply || h.parent_id != hello.msg_id) continue;
      if (h.error) throw ConnectionError("registration refused: " + h.error->message);
      id = h.engine;
      if (h.info.kind() == Value::Kind::map && h.info.as_map().contains("heartbeat_ms"))
        period =
            std::chrono::milliseconds(std::max<std::int64_t>(4, h.info["heartbeat_ms"].as_int()));
    } catch (const ProtocolError& e) {
      spdlog::warn("dropped a message during registration: {}", e.what());
    }
  }
  id_.store(id);
  spdlog::info("engine {} registered ({} threads)", id, runtime.executor().threads());

  const std::string identity = fmt::format("e{}", id);
  zmq::socket_t direct(ctx, zmq::socket_type::dealer);
  zmq::socket_t balanced(ctx, zmq::socket_type::dealer);
  for (auto* s : {&direct, &balanced}) {
    s->set(zmq::sockopt::routing_id, identity);
    s->set(zmq::sockopt::linger, 0);
  }
  direct.connect(conn.endpoint("engine_direct"));
  balanced.connect(conn.endpoint("engine_balanced"));

  // The heartbeat has a thread and socket of its own, so an engine busy with a large message
  // (verifying or decoding gigabytes) still answers, and a silent controller is still noticed.
  std::atomic<int> exit_code{0};
  std::atomic<bool> heart_stop{false};
  // Set by the heartbeat thread when the controller says it does not know this engine (it
  // restarted, or dropped the engine): the I/O thread registers again under the same id.
  std::atomic<bool> need_register{false};
  // The controller declares an engine dead after one silent period: ping four times per period.
  const auto ping_every = period / 4;
  const auto controller_timeout = std::max(options_.controller_timeout, 2 * period);
  std::thread heart([&] {
    zmq::socket_t heartbeat(ctx, zmq::socket_type::dealer);
    heartbeat.set(zmq::sockopt::routing_id, identity);
    heartbeat.set(zmq::sockopt::linger, 0);
    heartbeat.connect(conn.endpoint("heartbeat"));
    auto last_heard = Steady::now();
    auto next_ping = Steady::now();
    int unknown = 0;
    zmq::pollitem_t item{heartbeat.handle(), 0, ZMQ_POLLIN, 0};
    while (!heart_stop.load() && !stop_.load()) {
      const auto now = Steady::now();
      if (now >= next_ping) {
        net::Header ping;
        ping.type = net::MsgType::Ping;
        ping.engine = id;
        ping.submitted = net::now_us();
        net::send(heartbeat, signer, net::make_message(ping), true);
        next_ping = now + ping_every;
      }
      if (now - last_heard > controller_timeout) {
        spdlog::warn("engine {}: controller silent for {} ms; exiting", id,
                     controller_timeout.count());
        exit_code.store(3);
        stop_.store(true);
        break;
      }
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(next_ping - now);
      try {
        zmq::poll(&item, 1,
                  std::clamp(wait, std::chrono::milliseconds(1), std::chrono::milliseconds(100)));
        if (item.revents & ZMQ_POLLIN) {
          while (auto env = net::recv(heartbeat, signer, zmq::recv_flags::dontwait)) {
            last_heard = Steady::now();
            const net::Header h = net::decode_header(env->parts.at(0));
            // Two refusals in a row: one may just race the controller learning of us.
            unknown = h.error ? unknown + 1 : 0;
            if (unknown >= 2) {
              need_register.store(true);
              unknown = 0;
            }
          }
        }
      } catch (const zmq::error_t& e) {
        if (e.num() != EINTR) spdlog::error("engine {} heartbeat: {}", id, e.what());
      } catch (const ProtocolError& e) {
        spdlog::warn("engine {} dropped a heartbeat: {}", id, e.what());
      }
    }
  });
  struct JoinHeart {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~JoinHeart() {
      stop.store(true);
      thread.join();
    }
  } join_heart{heart_stop, heart};
  // A first message on each task channel tells its scheduler this engine's route exists;
  // schedulers hold tasks for an engine until they have heard from it.
  auto greet = [&] {
    for (auto* s : {&direct, &balanced}) {
      net::Header greeting;
      greeting.type = net::MsgType::Ping;
      greeting.engine = id;
      net::send(*s, signer, net::make_message(greeting), true);
    }
  };
  greet();

  Impl impl;
  zmq::socket_t wake_pull(ctx, zmq::socket_type::pull);
  zmq::socket_t wake_push(ctx, zmq::socket_type::push);
  const std::string wake_ep = fmt::format("inproc://engine-wake-{}", static_cast<void*>(&impl));
  wake_pull.bind(wake_ep);
  wake_push.connect(wake_ep);
  impl.wake = &wake_push;

  auto post = [&impl](int channel, net::Envelope env) {
    std::lock_guard lock(impl.out_mutex);
    impl.outgoing.push_back({channel, std::move(env)});
    impl.wake->send(zmq::message_t(1), zmq::send_flags::dontwait);
  };

  auto handle_task = [&](int channel, net::Envelope env) {
    net::Header h;
    try {
      h = net::decode_header(env.parts.at(0));
    } catch (const ProtocolError& e) {
      spdlog::warn("dropped a task message: {}", e.what());
      return;
    }
    switch (h.type) {
      case net::MsgType::ApplyRequest:
      case net::MsgType::MapRequest:
      case net::MsgType::ExecuteRequest:
      case net::MsgType::NamespaceRequest:
        break;
      default:
        spdlog::warn("unexpected {} on a task channel", net::to_string(h.type));
        return;
    }
    auto route = std::make_shared<std::vector<zmq::message_t>>(std::move(env.route));
    auto done = [post, channel, route, id, msg_id = h.msg_id, session = h.session, task = h.task,
                 submitted = h.submitted](TaskOutcome out) {
      net::Header r;
      r.type = net::MsgType::TaskReply;
      r.msg_id = net::new_id();
      r.parent_id = msg_id;
      r.session = session;
      r.task = task;
      r.engine = id;
      r.submitted = submitted;
      r.started =
          std::chrono::duration_cast<std::chrono::microseconds>(out.started.time_since_epoch())
              .count();
      r.completed =
          std::chrono::duration_cast<std::chrono::microseconds>(out.completed.time_since_epoch())
              .count();
      if (out.error) {
        out.error->engine = id;
        r.error = std::move(out.error);
      }
      net::Envelope reply =
          net::make_message(std::move(r), out.ok() ? std::move(out.result) : Payload{});
      for (auto& m : *route)
        reply.route.emplace_back(m.data(), m.size());
      post(channel, std::move(reply));
    };
    Payload payload = net::payload_of(env);
    const bool is_map = h.type == net::MsgType::MapRequest;
    switch (h.type) {
      case net::MsgType::ExecuteRequest:
        runtime.submit_ordered(
            [&runtime, payload = std::move(payload)]() -> TaskOutcome {
              const Value code = decode(payload);
              return runtime.execute(code.as_string());
            },
            std::move(done));
        return;
      case net::MsgType::NamespaceRequest:
        runtime.submit_ordered([&runtime, op = h.task, payload = std::move(payload),
                                id]() { return namespace_op(runtime, op, payload, id); },
                               std::move(done));
        return;
      default:
        break;
    }
    bool ordered = !h.bind.empty();
    if (!ordered) {
      try {
        ordered = Runtime::has_refs(payload);
      } catch (const ProtocolError&) {
        // invoke reports the corrupt buffer to the client
      }
    }
    if (ordered) {
      runtime.submit_ordered(
          [&runtime, task = h.task, payload = std::move(payload), is_map, bind = h.bind]() {
            return runtime.run_now(task, payload, is_map, bind);
          },
          std::move(done));
    } else if (is_map) {
      runtime.submit_map(h.task, std::move(payload), std::move(done));
    } else {
      runtime.submit(h.task, std::move(payload), std::move(done));
    }
  };

  std::string reregister_id;
  auto reregister_sent = Steady::now();
  auto reregister = [&] {
    if (!reregister_id.empty() && Steady::now() - reregister_sent < std::chrono::seconds(2))
      return;  // an attempt is under way
    net::Header again = hello;
    again.msg_id = reregister_id = net::new_id();
    again.engine = id;
    reregister_sent = Steady::now();
    spdlog::warn("engine {}: the controller does not know this engine; registering again", id);
    net::send(reg, signer, net::make_message(again), true);
  };

  auto handle_hub = [&](net::Envelope env) {
    const net::Header h = net::decode_header(env.parts.at(0));
    switch (h.type) {
      case net::MsgType::PluginPush: {
        net::Header r;
        r.type = net::MsgType::PluginLoaded;
        r.msg_id = net::new_id();
        r.parent_id = h.msg_id;
        r.engine = id;
        try {
          Value file = decode(net::payload_of(env));
          const auto& bytes = file.as_bytes().data;
          auto plugin = runtime.load_bytes(bytes.bytes());
          Value::List tasks;
          for (const auto& t : plugin->tasks()) {
            tasks.push_back(
                Value::map({{"name", t.name}, {"signature", t.signature}, {"doc", t.doc}}));
          }
          r.info = Value::map({{"name", plugin->name()},
                               {"version", plugin->version()},
                               {"hash", plugin->hash()},
                               {"tasks", Value(std::move(tasks))}});
        } catch (const Error& e) {
          ErrorRecord rec;
          rec.code = e.code();
          rec.type = e.code() == ErrorCode::plugin_load ? "ipp::PluginLoadError" : "ipp::Error";
          rec.message = e.what();
          rec.engine = id;
          r.error = std::move(rec);
          spdlog::warn("plugin push refused: {}", e.what());
        }
        net::send(reg, signer, net::make_message(std::move(r)));
        break;
      }
      case net::MsgType::Stop:
        spdlog::info("engine {} told to stop", id);
        stop_.store(true);
        break;
      case net::MsgType::RegisterReply:
        if (h.parent_id != reregister_id) break;  // an answer to an older attempt
        reregister_id.clear();
        if (h.error) {
          spdlog::error("engine {} cannot register again: {}", id, h.error->message);
          exit_code.store(3);
          stop_.store(true);
          break;
        }
        need_register.store(false);
        spdlog::info("engine {} registered again with the controller", id);
        greet();
        break;
      default:
        spdlog::warn("unexpected {} from the hub", net::to_string(h.type));
    }
  };

  zmq::pollitem_t items[] = {{reg.handle(), 0, ZMQ_POLLIN, 0},
                             {direct.handle(), 0, ZMQ_POLLIN, 0},
                             {balanced.handle(), 0, ZMQ_POLLIN, 0},
                             {wake_pull.handle(), 0, ZMQ_POLLIN, 0}};
  while (!stop_.load()) {
    if (need_register.load()) reregister();
    try {
      zmq::poll(items, 4, std::chrono::milliseconds(100));
    } catch (const zmq::error_t& e) {
      if (e.num() == EINTR) continue;  // a signal: the loop condition decides
      throw;
    }
    try {
      if (items[0].revents & ZMQ_POLLIN) {
        if (auto env = net::recv(reg, signer, zmq::recv_flags::dontwait))
          handle_hub(std::move(*env));
      }
      for (int c = 0; c < 2; ++c) {
        auto& sock = c == 0 ? direct : balanced;
        if (items[1 + c].revents & ZMQ_POLLIN) {
          while (auto env = net::recv(sock, signer, zmq::recv_flags::dontwait))
            handle_task(c, std::move(*env));
        }
      }
    } catch (const ProtocolError& e) {
      spdlog::warn("engine {} dropped a message: {}", id, e.what());
    }
    if (items[3].revents & ZMQ_POLLIN) {
      zmq::message_t drain;
      while (wake_pull.recv(drain, zmq::recv_flags::dontwait)) {
      }
      std::deque<Impl::Outgoing> batch;
      {
        std::lock_guard lock(impl.out_mutex);
        batch.swap(impl.outgoing);
      }
      for (auto& o : batch)
        net::send(o.channel == 0 ? direct : balanced, signer, o.envelope);
    }
  }
  runtime.executor().wait_idle();
  std::error_code ec;
  if (options_.store_dir.empty()) std::filesystem::remove_all(store, ec);
  return exit_code.load();
}

}  // namespace ipp
