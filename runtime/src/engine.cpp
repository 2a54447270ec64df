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

#include "engine/engine_heart.hpp"
#include "engine/job_table.hpp"
#include "engine/reply_batcher.hpp"
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

/// A client's namespace request: "push" (a map of name -> value), "pull" (a list of names;
/// replies with the list of values) or "clear".
TaskOutcome namespace_op(Runtime& runtime, const std::string& op, const Payload& payload,
                         std::int64_t engine) {
  TaskOutcome out;
  out.started = Clock::now();
  auto fail = [&](ErrorCode code, std::string message) {
    out.error = make_error_record(code, std::move(message), op, engine);
  };
  try {
    if (op == "push") {
      const Value values = decode(payload);
      for (const auto& [name, value] : values.as_map()) {
        if (value.kind() == Value::Kind::ref) {
          fail(ErrorCode::argument, fmt::format("cannot bind '{}' to a reference", name));
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
          fail(ErrorCode::name_error,
               fmt::format("name '{}' is not defined on engine {}", n.as_string(), engine));
          break;
        }
        values.push_back(std::move(*v));
      }
      if (out.ok()) out.result = encode(Value(std::move(values)));
    } else if (op == "clear") {
      runtime.clear_namespace();
    } else {
      fail(ErrorCode::usage, fmt::format("unknown namespace operation '{}'", op));
    }
  } catch (const Error& e) {
    fail(e.code(), e.what());
  }
  out.completed = Clock::now();
  return out;
}

TaskOutcome not_started(const std::string& task, std::int64_t engine) {
  TaskOutcome out;
  out.started = out.completed = Clock::now();
  out.error = cancelled_before_start(task, engine);
  return out;
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

  // The heartbeat has a thread and socket of its own, so an engine busy with a large message
  // (verifying or decoding gigabytes) still answers, and a silent controller is still noticed.
  std::atomic<int> exit_code{0};
  std::atomic<bool> heart_stop{false};
  // Set by the heartbeat thread when the controller says it does not know this engine (it
  // restarted, or dropped the engine): the receiving loop registers again under the same id.
  std::atomic<bool> need_register{false};
  std::thread heart([&] {
    // A context (an I/O thread) of its own: a gigabyte message arriving on a task channel
    // does not delay the pings.
    zmq::context_t heart_ctx;
    zmq::socket_t heartbeat(heart_ctx, zmq::socket_type::dealer);
    heartbeat.set(zmq::sockopt::routing_id, identity);
    heartbeat.set(zmq::sockopt::linger, 0);
    heartbeat.connect(conn.endpoint("heartbeat"));
    engine::EngineHeart beat(period, options_.controller_timeout, Steady::now());
    zmq::pollitem_t item{heartbeat.handle(), 0, ZMQ_POLLIN, 0};
    while (!heart_stop.load() && !stop_.load()) {
      const auto now = Steady::now();
      if (beat.ping_due(now)) {
        net::Header ping;
        ping.type = net::MsgType::Ping;
        ping.engine = id;
        ping.submitted = net::now_us();
        net::send(heartbeat, signer, net::make_message(ping), true);
      }
      if (beat.given_up(now)) {
        spdlog::warn("engine {}: controller silent for {} ms; exiting", id, beat.timeout().count());
        exit_code.store(3);
        stop_.store(true);
        break;
      }
      const auto wait = std::chrono::duration_cast<std::chrono::milliseconds>(beat.until_ping(now));
      try {
        zmq::poll(&item, 1,
                  std::clamp(wait, std::chrono::milliseconds(1), std::chrono::milliseconds(100)));
        if (item.revents & ZMQ_POLLIN) {
          while (auto env = net::recv(heartbeat, signer, zmq::recv_flags::dontwait)) {
            const net::Header h = net::decode_header(env->parts.at(0));
            if (beat.heard(Steady::now(), h.error.has_value())) need_register.store(true);
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
  auto post = [&replies](int channel, std::optional<net::Envelope> env, std::string finished) {
    replies.post(channel, std::move(env), std::move(finished));
  };
  // Tasks held here (the receiving loop's only): queued or running, with their time limits.
  engine::JobTable jobs(options_.time_limit_grace);
  auto reply_to = [id](const engine::Job& job) {
    net::Header r;
    r.type = net::MsgType::TaskReply;
    r.msg_id = net::new_id();
    r.parent_id = job.request.msg_id;
    r.session = job.request.session;
    r.task = job.request.task;
    r.engine = id;
    r.submitted = job.request.submitted;
    return r;
  };

  // abort: tasks not started yet will not run; cancel: the same, and running tasks see
  // ipp::Context::cancelled() and are reported cancelled when they return.
  auto control = [&](const net::Header& h) {
    if (h.info.kind() != Value::Kind::list) return;
    std::vector<std::string> ids;
    for (const auto& v : h.info.as_list()) {
      if (v.kind() == Value::Kind::string) ids.push_back(v.as_string());
    }
    jobs.control(ids, h.task == "cancel");
  };
  // Tasks past their time limit: the client is told at once, and the task is cancelled. Its
  // thread is still taken: the scheduler counts the slot busy until SlotFreed.
  auto enforce_limits = [&] {
    const std::int64_t now = net::now_us();
    for (const auto& job : jobs.expire(now)) {
      net::Header r = reply_to(*job);
      r.started = job->control->started_us.load();
      r.completed = now;
      r.error =
          make_error_record(ErrorCode::timeout,
                            fmt::format("task '{}' ran longer than its time limit of {} ms; it "
                                        "was cancelled",
                                        job->request.task, job->time_limit_ms),
                            job->request.task);
      r.error->engine = id;
      r.info = Value::map({{"held", true}});
      net::send(job->channel == 0 ? direct : balanced, signer, net::make_message(std::move(r)),
                false, to_controller);
    }
    // One still running the grace period later cannot be taken back: the engine ends,
    // saying why, and its supervisor starts a fresh one.
    if (const auto job = jobs.past_grace(now)) {
      spdlog::error(
          "engine {}: task '{}' ({}) still runs {} ms after its time limit of {} ms and does "
          "not stop when cancelled; the engine exits (code {}) to be restarted",
          id, job->request.task, job->request.msg_id, options_.time_limit_grace.count(),
          job->time_limit_ms, net::kEngineTaskPastTimeLimit);
      spdlog::default_logger()->flush();
      std::_Exit(net::kEngineTaskPastTimeLimit);
    }
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
      case net::MsgType::ControlRequest:
        control(h);
        return;
      default:
        spdlog::warn("unexpected {} on a task channel", net::to_string(h.type));
        return;
    }
    if (!env.unreadable.empty()) {  // a part it needs never arrived: say so, run nothing
      net::Header r;
      r.type = net::MsgType::TaskReply;
      r.msg_id = net::new_id();
      r.parent_id = h.msg_id;
      r.session = h.session;
      r.task = h.task;
      r.engine = id;
      r.error = make_error_record(
          ErrorCode::protocol,
          fmt::format("the request for task '{}' could not be read on engine {}: {}", h.task, id,
                      env.unreadable),
          h.task);
      r.error->engine = id;
      net::send(channel == 0 ? direct : balanced, signer, net::make_message(std::move(r)), false,
                to_controller);
      return;
    }
    auto job = std::make_shared<engine::Job>();
    job->channel = channel;
    job->request.msg_id = h.msg_id;
    job->request.session = h.session;
    job->request.task = h.task;
    job->request.submitted = h.submitted;
    job->time_limit_ms = h.flags.time_limit_ms;
    jobs.add(job);
    auto done = [post, reply_to, job, id](TaskOutcome out) {
      if (job->replied.exchange(true)) {  // timed out: the client has its answer
        std::optional<net::Envelope> freed;
        if (job->verdict.load() == engine::Job::timed_out && job->channel == 1) {
          net::Header f = reply_to(*job);
          f.type = net::MsgType::SlotFreed;
          freed = net::make_message(std::move(f));
        }
        post(job->channel, std::move(freed), job->request.msg_id);
        return;
      }
      net::Header r = reply_to(*job);
      r.started =
          std::chrono::duration_cast<std::chrono::microseconds>(out.started.time_since_epoch())
              .count();
      r.completed =
          std::chrono::duration_cast<std::chrono::microseconds>(out.completed.time_since_epoch())
              .count();
      const bool ran = !(out.error && out.error->code == ErrorCode::cancelled &&
                         job->control->started_us.load() == 0);
      const std::string& task = job->request.task;
      switch (job->verdict.load()) {
        case engine::Job::aborted:
          if (!ran) {
            out.error = make_error_record(
                ErrorCode::aborted, fmt::format("task '{}' was aborted before it ran", task), task);
          }
          break;
        case engine::Job::cancelled:
          if (ran) {  // whatever it returned: it was asked to stop
            out.error =
                make_error_record(ErrorCode::cancelled,
                                  fmt::format("task '{}' was cancelled while it ran", task), task);
          }
          break;
        default:
          break;
      }
      if (out.error) {
        out.error->engine = id;
        r.error = std::move(out.error);
      }
      net::Envelope reply =
          net::make_message(std::move(r), out.ok() ? std::move(out.result) : Payload{});
      post(job->channel, std::move(reply), job->request.msg_id);
    };
    Payload payload = net::payload_of(env);
    const bool is_map = h.type == net::MsgType::MapRequest;
    switch (h.type) {
      case net::MsgType::ExecuteRequest:
        runtime.submit_ordered(
            [&runtime, payload = std::move(payload), control = job->control, id]() -> TaskOutcome {
              if (!control->start()) return not_started("execute", id);
              const Value code = decode(payload);
              return runtime.execute(code.as_string(), &control->cancelled);
            },
            std::move(done));
        return;
      case net::MsgType::NamespaceRequest:
        runtime.submit_ordered(
            [&runtime, op = h.task, payload = std::move(payload), id, control = job->control]() {
              if (!control->start()) return not_started(op, id);
              return namespace_op(runtime, op, payload, id);
            },
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
          [&runtime, task = h.task, payload = std::move(payload), is_map, bind = h.bind,
           control = job->control, id]() {
            if (!control->start()) return not_started(task, id);
            return runtime.run_now(task, payload, is_map, bind, &control->cancelled);
          },
          std::move(done));
    } else if (is_map) {
      runtime.submit_map(h.task, std::move(payload), std::move(done), job->control);
    } else {
      runtime.submit(h.task, std::move(payload), std::move(done), job->control,
                     job->time_limit_ms == 0);
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
        need_register.store(false);
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
    if (need_register.load()) reregister();
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
            handle_task(c, std::move(env));
        }
      }
    } catch (const ProtocolError& e) {
      spdlog::warn("engine {} dropped a message: {}", id, e.what());
    }
    if (jobs.timed()) enforce_limits();
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
