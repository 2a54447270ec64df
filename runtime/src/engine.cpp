#include "ipp/runtime/engine.hpp"
#include "ipp/net/address.hpp"

#include <malloc.h>
#include <unistd.h>

#include <exception>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "engine/heart_thread.hpp"
#include "engine/job_table.hpp"
#include "engine/plugin_messages.hpp"
#include "engine/registration.hpp"
#include "engine/reply_batcher.hpp"
#include "engine/task_dispatcher.hpp"
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

/// A task channel: the engine's routing id, no limit and no loss either way (as the
/// controller's task channels).
zmq::socket_t task_socket(zmq::context_t& ctx, const std::string& identity,
                          const std::string& endpoint, const net::CurveKeys& curve) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::routing_id, identity);
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::sndhwm, 0);
  s.set(zmq::sockopt::rcvhwm, 0);
  net::connect(s, endpoint, curve);
  return s;
}

/// A send-only socket for results: the schedulers match a reply by its header, not by the
/// connection it came on, and never send to these.
zmq::socket_t reply_socket(zmq::context_t& ctx, const std::string& endpoint,
                           const net::CurveKeys& curve) {
  zmq::socket_t s(ctx, zmq::socket_type::dealer);
  s.set(zmq::sockopt::linger, 0);
  s.set(zmq::sockopt::sndhwm, 0);
  net::connect(s, endpoint, curve);
  return s;
}

/// What an engine is made of before it registers.
struct Base {
  const EngineOptions& options;
  const net::ConnectionInfo& conn;
  const net::Signer& signer;
  const net::SharedMemory* shm;  // large arrays through shared memory, when there is one
  bool local;                    // the controller's Unix sockets are reachable
  Runtime& runtime;
  zmq::context_t& ctx;
  zmq::socket_t& reg;  // the registration socket
  engine::Registration& registration;
  std::atomic<bool>& stop;
  net::ClockOffset& clock;  // the controller's clock against this host's
};

/// The engine once registered: its task channels and reply sockets, the heartbeat thread,
/// the tasks it holds, and the receiving loop, whose turns run on the pool one at a time (a
/// task received in a turn runs on the thread that received it while another takes the next
/// turns: Executor::lead).
class Session {
 public:
  explicit Session(const Base& b);
  /// Runs the receiving loop until told to stop; returns the engine's exit code. Throws what
  /// a turn threw, on this thread.
  int run();

 private:
  /// A first message on each task channel tells its scheduler this engine's route exists;
  /// schedulers hold tasks for an engine until they have heard from it.
  void greet();
  /// One message from the hub: a plugin to load or unload, stop, or the answer to
  /// registering again.
  void on_hub(const net::Envelope& env);
  void registered_again(const net::Header& reply);
  bool turn();
  /// After a second without tasks, freed memory goes back to the system and kept mappings
  /// of shared memory go: an idle engine's footprint does not stay at the high-water mark of
  /// its last (maybe large) work.
  void trim_when_idle();
  /// Takes in what the poll found on the registration socket and the task channels.
  void receive();

  // However run() ends, the pool finishes with the reply sockets before they close.
  struct IdlePool {
    Executor& pool;
    ~IdlePool() { pool.wait_idle(); }
  };

  Base b_;
  std::int64_t id_;
  std::string identity_;  // the engine's routing id on the task channels and heartbeats
  net::SharedParts to_controller_;
  zmq::socket_t direct_, balanced_;
  std::atomic<int> exit_code_{0};
  engine::HeartThread heart_;
  zmq::socket_t reply_sockets_[2];
  engine::ReplyBatcher replies_;
  IdlePool idle_pool_;
  // Tasks held here (the receiving loop's only): queued or running, with their time limits.
  engine::JobTable jobs_;
  engine::TaskDispatcher dispatcher_;
  zmq::pollitem_t items_[3];
  Steady::time_point last_work_ = Steady::now();
  Steady::time_point last_trim_{};
  bool trimmed_ = true;
};

Session::Session(const Base& b)
    : b_(b),
      id_(b.registration.id()),
      identity_(fmt::format("e{}", id_)),
      to_controller_{b.shm, b.shm != nullptr},
      direct_(
          task_socket(b.ctx, identity_, b.conn.endpoint("engine_direct", b.local), b.conn.curve)),
      balanced_(
          task_socket(b.ctx, identity_, b.conn.endpoint("engine_balanced", b.local), b.conn.curve)),
      heart_({.endpoint = b.conn.endpoint("heartbeat"),
              .curve = b.conn.curve,
              .identity = identity_,
              .signer = b.signer,
              .engine = id_,
              .period = b.registration.period(),
              .controller_timeout = b.options.controller_timeout,
              .stop = b.stop,
              .exit_code = exit_code_,
              .clock = &b.clock}),
      reply_sockets_{
          reply_socket(b.ctx, b.conn.endpoint("engine_direct", b.local), b.conn.curve),
          reply_socket(b.ctx, b.conn.endpoint("engine_balanced", b.local), b.conn.curve)},
      replies_({&reply_sockets_[0], &reply_sockets_[1]}, b.signer, to_controller_, id_,
               [&pool = b.runtime.executor()] { return pool.queued(); }),
      idle_pool_{b.runtime.executor()},
      jobs_(b.options.time_limit_grace),
      dispatcher_({.runtime = b.runtime,
                   .jobs = jobs_,
                   .replies = replies_,
                   .channels = {&direct_, &balanced_},
                   .signer = b.signer,
                   .to_controller = to_controller_,
                   .engine = id_,
                   .time_limit_grace = b.options.time_limit_grace,
                   .clock = &b.clock}),
      items_{{b.reg.handle(), 0, ZMQ_POLLIN, 0},
             {direct_.handle(), 0, ZMQ_POLLIN, 0},
             {balanced_.handle(), 0, ZMQ_POLLIN, 0}} {
  greet();
}

void Session::greet() {
  for (auto* s : {&direct_, &balanced_}) {
    net::Header greeting;
    greeting.type = net::MsgType::Ping;
    greeting.engine = id_;
    net::send(*s, b_.signer, net::make_message(greeting), true, to_controller_);
  }
}

void Session::on_hub(const net::Envelope& env) {
  const net::Header h = net::decode_header(env.parts.at(0));
  switch (h.type) {
    case net::MsgType::PluginPush:
      net::send(b_.reg, b_.signer, net::make_message(engine::load_pushed(b_.runtime, id_, h, env)));
      break;
    case net::MsgType::PluginUnload:
      net::send(b_.reg, b_.signer, net::make_message(engine::unload_pushed(b_.runtime, id_, h)));
      break;
    case net::MsgType::Stop:
      spdlog::info("engine {} told to stop", id_);
      b_.stop.store(true);
      break;
    case net::MsgType::RegisterReply:
      registered_again(h);
      break;
    default:
      spdlog::warn("unexpected {} from the hub", net::to_string(h.type));
  }
}

void Session::registered_again(const net::Header& reply) {
  using Answer = engine::Registration::Answer;
  switch (b_.registration.answered(reply)) {
    case Answer::stale:
      return;
    case Answer::refused:
      exit_code_.store(net::kEngineLostController);
      b_.stop.store(true);
      return;
    case Answer::same_controller: {
      // This controller declared the engine dead and told the clients of its tasks so:
      // their results must not come too (one outcome per task). They stop here.
      heart_.registered();
      const std::size_t dropped = jobs_.drop_all();
      greet();
      spdlog::warn(
          "engine {} registered again with the controller that had declared it dead; its {} "
          "task(s) were cancelled and their results dropped",
          id_, dropped);
      return;
    }
    case Answer::new_controller: {
      // A restarted controller: results of tasks it lost track of are still wanted, and
      // those sent lately may never have been recorded by the one that died.
      heart_.registered();
      greet();
      const std::size_t again = replies_.resend_kept();
      spdlog::info(
          "engine {} registered again with a restarted controller; {} recent result(s) sent "
          "again",
          id_, again);
      return;
    }
  }
}

void Session::trim_when_idle() {
  const auto now = Steady::now();
  // Replies kept for a restarted controller go when they are old enough, work or not; what
  // they took goes back at the next trim.
  if (replies_.expire_kept(now) > 0) trimmed_ = false;
  if (!jobs_.empty()) {
    last_work_ = now;
    trimmed_ = false;
  } else if (!trimmed_ && now - last_work_ > std::chrono::seconds(1) &&
             now - last_trim_ > std::chrono::seconds(1)) {
    ::malloc_trim(0);
    net::SharedMemory::trim(std::chrono::seconds(0));
    trimmed_ = true;
    last_trim_ = now;
  }
}

void Session::receive() {
  if ((items_[0].revents | items_[1].revents | items_[2].revents) & ZMQ_POLLIN) {
    last_work_ = Steady::now();
    trimmed_ = false;
  }
  try {
    if (items_[0].revents & ZMQ_POLLIN) {
      if (auto env = net::recv(b_.reg, b_.signer, zmq::recv_flags::dontwait)) on_hub(*env);
    }
    std::vector<net::Envelope> in;
    for (int c = 0; c < 2; ++c) {
      auto& sock = c == 0 ? direct_ : balanced_;
      if (!(items_[1 + c].revents & ZMQ_POLLIN)) continue;
      while (true) {
        in.clear();
        try {
          if (!net::recv_all(sock, b_.signer, in, zmq::recv_flags::dontwait, b_.shm,
                             net::Unverified::answer))
            break;
        } catch (const ProtocolError& e) {
          spdlog::warn("engine {} dropped a message: {}", id_, e.what());
          continue;
        }
        for (auto& env : in) {
          // A task whose signature does not verify is answered with an error saying so (its
          // caller would wait for it); anything else of that kind goes unread.
          if (!env.verified && !net::is_task_request(net::decode_header(env.parts.at(0)).type)) {
            spdlog::warn("engine {} dropped a message: {}", id_, env.unreadable);
            continue;
          }
          dispatcher_.on_message(c, std::move(env));
        }
      }
    }
  } catch (const ProtocolError& e) {
    spdlog::warn("engine {} dropped a message: {}", id_, e.what());
  }
}

bool Session::turn() {
  if (b_.stop.load()) return false;
  if (heart_.need_register()) b_.registration.again();
  // Finished tasks are forgotten at the next turn; until then an abort or a time limit that
  // names one finds it replied and does nothing.
  jobs_.forget(replies_.take_finished());
  trim_when_idle();
  // Replies held for company go now; while tasks are queued, replies finishing meanwhile
  // may be held, and this loop comes back for them within ReplyBatcher::kHoldAtMost.
  const auto wait = replies_.before_wait(std::chrono::milliseconds(jobs_.timed() ? 5 : 100));
  const int polled = net::poll(items_, 3, wait);
  replies_.after_wait();
  if (polled < 0) return !b_.stop.load();  // a signal: the loop condition decides
  receive();
  if (jobs_.timed()) dispatcher_.enforce_limits();
  return !b_.stop.load();
}

int Session::run() {
  // Anything a turn throws but a bad message ends the loop, and run() throws it here.
  std::exception_ptr failure;
  b_.runtime.executor().lead([&]() -> bool {
    try {
      return turn();
    } catch (...) {
      failure = std::current_exception();
      return false;
    }
  });
  if (failure) std::rethrow_exception(failure);
  b_.runtime.executor().wait_idle();
  return exit_code_.load();
}

}  // namespace

Engine::Engine(EngineOptions options) : options_(std::move(options)) {}
Engine::~Engine() = default;

int Engine::run() {
  const net::ConnectionInfo conn = net::read_connection_file(options_.connection_file, "engine");
  const net::Signer signer(conn.key, net::Signer::for_connection(conn.curve.on()));
  // Large arrays go through shared memory when this host sees the controller's directory:
  // results are sent by reference, and pushed arrays are read where the client left them.
  const net::SharedMemory* shm = options_.shared_memory && !conn.shm_dir.empty()
                                     ? net::SharedMemory::open(conn.shm_dir, conn.shm_token)
                                     : nullptr;
  if (shm == nullptr && !conn.shm_dir.empty())
    spdlog::info("large arrays travel through the sockets (no shared memory with the controller)");
  const auto store = options_.store_dir.empty() ? default_store() : options_.store_dir;
  Runtime runtime(
      {.threads = options_.threads, .store_dir = store, .max_map_output = options_.max_map_output});
  for (const auto& p : options_.on_demand_plugins)
    runtime.load_on_demand(p.stem().string(), p);
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
  net::connect(reg, conn.endpoint("registration"), conn.curve);
  net::ClockOffset clock;
  engine::Registration registration({.socket = reg,
                                     .signer = signer,
                                     .endpoint = conn.endpoint("registration"),
                                     .threads = runtime.executor().threads(),
                                     .wanted_id = options_.engine_id,
                                     .heartbeat = options_.heartbeat,
                                     .timeout = options_.register_timeout,
                                     .clock = &clock});
  if (!registration.first(stop_)) return 0;
  id_.store(registration.id());
  runtime.set_engine_id(registration.id());
  spdlog::info("engine {} registered ({} threads)", registration.id(),
               runtime.executor().threads());
  if (const std::int64_t off = clock.offset_us(); off > 1000 || off < -1000) {
    spdlog::info(
        "engine {}: the controller's clock is {:.1f} ms {} of this host's (within "
        "{:.1f} ms); task times are given in its clock",
        registration.id(), static_cast<double>(off < 0 ? -off : off) / 1000.0,
        off < 0 ? "behind" : "ahead", static_cast<double>(clock.rtt_us()) / 2000.0);
  }

  // On the controller's host the task channels go through its Unix sockets, if it offers them.
  const bool local = net::SharedMemory::sees(conn.shm_dir, conn.shm_token);
  int code = 0;
  {
    Session session({.options = options_,
                     .conn = conn,
                     .signer = signer,
                     .shm = shm,
                     .local = local,
                     .runtime = runtime,
                     .ctx = ctx,
                     .reg = reg,
                     .registration = registration,
                     .stop = stop_,
                     .clock = clock});
    code = session.run();
  }
  std::error_code ec;
  if (options_.store_dir.empty()) std::filesystem::remove_all(store, ec);
  return code;
}

}  // namespace ipp
