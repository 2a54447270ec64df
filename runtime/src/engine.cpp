#include "ipp/runtime/engine.hpp"

#include <malloc.h>
#include <unistd.h>

#include <algorithm>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "engine/heart_thread.hpp"
#include "engine/job_table.hpp"
#include "engine/load_watchdog.hpp"
#include "engine/reply_batcher.hpp"
#include "engine/task_dispatcher.hpp"
#include "ipp/codec.hpp"
#include "ipp/net/connection_file.hpp"
#include "ipp/net/engine_exit.hpp"
#include "ipp/net/envelope.hpp"
#include "ipp/net/header.hpp"
#include "ipp/net/message.hpp"
#include "ipp/net/poll.hpp"
#include "ipp/net/shm.hpp"
#include "ipp/runtime/runtime.hpp"

namespace ipp {

namespace {

using Steady = std::chrono::steady_clock;

std::filesystem::path default_store() {
  return std::filesystem::temp_directory_path() / fmt::format("ipp-engine-{}", ::getpid());
}

/// What a PluginPush `h` says of the controller's load time-out (30 s when it says nothing)
/// and of the plugin (its hash, cut).
std::chrono::milliseconds load_timeout_of(const net::Header& h) {
  if (h.info.kind() == Value::Kind::map) {
    const auto& m = h.info.as_map();
    const auto it = m.find("load_timeout_ms");
    if (it != m.end() && it->second.kind() == Value::Kind::integer && it->second.as_int() > 0)
      return std::chrono::milliseconds(it->second.as_int());
  }
  return std::chrono::seconds(30);
}
std::string plugin_of(const net::Header& h) {
  if (h.info.kind() != Value::Kind::map) return "(unnamed)";
  const auto& m = h.info.as_map();
  const auto it = m.find("hash");
  if (it == m.end() || it->second.kind() != Value::Kind::string) return "(unnamed)";
  return it->second.as_string().substr(0, 12);
}

}  // namespace

Engine::Engine(EngineOptions options) : options_(std::move(options)) {}
Engine::~Engine() = default;

int Engine::run() {
  const net::ConnectionInfo conn = net::read_connection_file(options_.connection_file);
  const net::Signer signer(conn.key);
  // Large arrays go through shared memory when this host sees the controller's directory:
  // results are sent by reference, and pushed arrays are read where the client left them.
  const net::SharedMemory* shm = options_.shared_memory && !conn.shm_dir.empty()
                                     ? net::SharedMemory::open(conn.shm_dir, conn.shm_token)
                                     : nullptr;
  const net::SharedParts to_controller{shm, shm != nullptr};
  // On the controller's host the task channels go through its Unix sockets, if it offers them.
  const bool local = net::SharedMemory::sees(conn.shm_dir, conn.shm_token);
  if (shm == nullptr && !conn.shm_dir.empty())
    spdlog::info("large arrays travel through the sockets (no shared memory with the controller)");
  const auto store = options_.store_dir.empty() ? default_store() : options_.store_dir;
  Runtime runtime(
      {.threads = options_.threads, .store_dir = store, .max_map_output = options_.max_map_output});
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

  // Registration: wait for our id, and learn which controller instance gave it.
  std::int64_t id = -1;
  std::string controller_session;
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
      controller_session = h.session;
      if (h.info.kind() == Value::Kind::map && h.info.as_map().contains("heartbeat_ms"))
        period =
            std::chrono::milliseconds(std::max<std::int64_t>(4, h.info["heartbeat_ms"].as_int()));
    } catch (const ProtocolError& e) {
      spdlog::warn("dropped a message during registration: {}", e.what());
    }
  }
  id_.store(id);
  runtime.set_engine_id(id);
  spdlog::info("engine {} registered ({} threads)", id, runtime.executor().threads());

  const std::string identity = fmt::format("e{}", id);
  zmq::socket_t direct(ctx, zmq::socket_type::dealer);
  zmq::socket_t balanced(ctx, zmq::socket_type::dealer);
  for (auto* s : {&direct, &balanced}) {
    s->set(zmq::sockopt::routing_id, identity);
    s->set(zmq::sockopt::linger, 0);
    s->set(zmq::sockopt::sndhwm, 0);  // as the controller's task channels: no limit, no loss
    s->set(zmq::sockopt::rcvhwm, 0);
  }
  direct.connect(conn.endpoint("engine_direct", local));
  balanced.connect(conn.endpoint("engine_balanced", local));

  std::atomic<int> exit_code{0};
  engine::HeartThread heart({.endpoint = conn.endpoint("heartbeat"),
                             .identity = identity,
                             .signer = signer,
                             .engine = id,
                             .period = period,
                             .controller_timeout = options_.controller_timeout,
                             .stop = stop_,
                             .exit_code = exit_code});
  // A first message on each task channel tells its scheduler this engine's route exists;
  // schedulers hold tasks for an engine until they have heard from it.
  auto greet = [&] {
    for (auto* s : {&direct, &balanced}) {
      net::Header greeting;
      greeting.type = net::MsgType::Ping;
      greeting.engine = id;
      net::send(*s, signer, net::make_message(greeting), true, to_controller);
    }
  };
  greet();

  // Send-only sockets for results: the schedulers match a reply by its header, not by the
  // connection it came on, and never send to these.
  zmq::socket_t reply_sockets[2] = {{ctx, zmq::socket_type::dealer},
                                    {ctx, zmq::socket_type::dealer}};
  for (int c = 0; c < 2; ++c) {
    auto& s = reply_sockets[c];
    s.set(zmq::sockopt::linger, 0);
    s.set(zmq::sockopt::sndhwm, 0);
    s.connect(conn.endpoint(c == 0 ? "engine_direct" : "engine_balanced", local));
  }
  Executor& pool = runtime.executor();
  engine::ReplyBatcher replies({&reply_sockets[0], &reply_sockets[1]}, signer, to_controller, id,
                               [&pool] { return pool.queued(); });
  // However run() ends, the pool finishes with the reply sockets before they close.
  struct IdlePool {
    Executor& pool;
    ~IdlePool() { pool.wait_idle(); }
  } idle_pool{pool};
  // Tasks held here (the receiving loop's only): queued or running, with their time limits.
  engine::JobTable jobs(options_.time_limit_grace);
  engine::TaskDispatcher dispatcher({.runtime = runtime,
                                     .jobs = jobs,
                                     .replies = replies,
                                     .channels = {&direct, &balanced},
                                     .signer = signer,
                                     .to_controller = to_controller,
                                     .engine = id,
                                     .time_limit_grace = options_.time_limit_grace});

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

  // The answer to the hub's PluginPush or PluginUnload `h`.
  auto plugin_answer = [id](const net::Header& h) {
    net::Header r;
    r.type = net::MsgType::PluginLoaded;
    r.msg_id = net::new_id();
    r.parent_id = h.msg_id;
    r.engine = id;
    return r;
  };
  auto handle_hub = [&](net::Envelope env) {
    const net::Header h = net::decode_header(env.parts.at(0));
    switch (h.type) {
      case net::MsgType::PluginPush: {
        net::Header r = plugin_answer(h);
        try {
          Value file = decode(net::payload_of(env));
          const auto& bytes = file.as_bytes().data;
          std::shared_ptr<const LoadedPlugin> plugin;
          {
            engine::LoadWatchdog guard(id, engine::LoadWatchdog::limit_for(load_timeout_of(h)),
                                       plugin_of(h));
            plugin = runtime.load_bytes(bytes.bytes());
          }
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
          r.error = make_error_record(e.code(), e.what(), {}, id);
          spdlog::warn("plugin push refused: {}", e.what());
        }
        net::send(reg, signer, net::make_message(std::move(r)));
        break;
      }
      case net::MsgType::PluginUnload: {
        net::Header r = plugin_answer(h);
        r.info = Value::map({{"name", h.task}, {"unloaded", runtime.unload(h.task)}});
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
        heart.registered();
        if (!h.session.empty() && h.session == controller_session) {
          // This controller declared the engine dead and told the clients of its tasks so:
          // their results must not come too (one outcome per task). They stop here.
          const std::size_t dropped = jobs.drop_all();
          greet();
          spdlog::warn(
              "engine {} registered again with the controller that had declared it "
              "dead; its {} task(s) were cancelled and their results dropped",
              id, dropped);
        } else {
          // A restarted controller: results of tasks it lost track of are still wanted, and
          // those sent lately may never have been recorded by the one that died.
          controller_session = h.session;
          greet();
          const std::size_t again = replies.resend_kept();
          spdlog::info(
              "engine {} registered again with a restarted controller; {} recent "
              "result(s) sent again",
              id, again);
        }
        break;
      default:
        spdlog::warn("unexpected {} from the hub", net::to_string(h.type));
    }
  };

  zmq::pollitem_t items[] = {{reg.handle(), 0, ZMQ_POLLIN, 0},
                             {direct.handle(), 0, ZMQ_POLLIN, 0},
                             {balanced.handle(), 0, ZMQ_POLLIN, 0}};
  // Finished tasks are forgotten at the next turn of the loop; until then an abort or a
  // time limit that names one finds it replied and does nothing.
  auto forget_finished = [&] { jobs.forget(replies.take_finished()); };
  // After a second without tasks, freed memory goes back to the system and kept mappings of
  // shared memory go: an idle engine's footprint does not stay at the high-water mark of its
  // last (maybe large) work.
  auto last_work = std::chrono::steady_clock::now();
  bool trimmed = true;
  // One turn of the loop that receives: polls once, takes in what came. The turns run on
  // the pool, one thread at a time; a task received in a turn runs on the thread that
  // received it while another takes the next turns (Executor::lead).
  std::exception_ptr failure;
  auto turn = [&]() -> bool {
    if (stop_.load()) return false;
    if (heart.need_register()) reregister();
    forget_finished();
    if (!jobs.empty()) {
      last_work = std::chrono::steady_clock::now();
      trimmed = false;
    } else if (!trimmed && std::chrono::steady_clock::now() - last_work > std::chrono::seconds(1)) {
      ::malloc_trim(0);
      net::SharedMemory::trim(std::chrono::seconds(0));
      trimmed = true;
    }
    // Replies held for company go now; while tasks are queued, replies finishing meanwhile
    // may be held, and this loop comes back for them within ReplyBatcher::kHoldAtMost.
    const auto wait = replies.before_wait(std::chrono::milliseconds(jobs.timed() ? 5 : 100));
    const int polled = net::poll(items, 3, wait);
    replies.after_wait();
    // A signal: the loop condition decides.
    if (polled < 0) return !stop_.load();
    if ((items[0].revents | items[1].revents | items[2].revents) & ZMQ_POLLIN) {
      last_work = std::chrono::steady_clock::now();
      trimmed = false;
    }
    try {
      if (items[0].revents & ZMQ_POLLIN) {
        if (auto env = net::recv(reg, signer, zmq::recv_flags::dontwait))
          handle_hub(std::move(*env));
      }
      std::vector<net::Envelope> in;
      for (int c = 0; c < 2; ++c) {
        auto& sock = c == 0 ? direct : balanced;
        if (!(items[1 + c].revents & ZMQ_POLLIN)) continue;
        while (true) {
          in.clear();
          try {
            if (!net::recv_all(sock, signer, in, zmq::recv_flags::dontwait, shm)) break;
          } catch (const ProtocolError& e) {
            spdlog::warn("engine {} dropped a message: {}", id, e.what());
            continue;
          }
          for (auto& env : in)
            dispatcher.on_message(c, std::move(env));
        }
      }
    } catch (const ProtocolError& e) {
      spdlog::warn("engine {} dropped a message: {}", id, e.what());
    }
    if (jobs.timed()) dispatcher.enforce_limits();
    return !stop_.load();
  };
  // Anything else a turn throws ends the loop, and run() throws it on its own thread.
  runtime.executor().lead([&]() -> bool {
    try {
      return turn();
    } catch (...) {
      failure = std::current_exception();
      return false;
    }
  });
  if (failure) std::rethrow_exception(failure);
  runtime.executor().wait_idle();
  std::error_code ec;
  if (options_.store_dir.empty()) std::filesystem::remove_all(store, ec);
  return exit_code.load();
}

}  // namespace ipp
