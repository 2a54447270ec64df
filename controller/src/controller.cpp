#include "ipp/controller/controller.hpp"

#include <pthread.h>
#include <sys/resource.h>
#include <unistd.h>

#include <latch>
#include <thread>

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <zmq.hpp>

#include "balanced_scheduler.hpp"
#include "balancer.hpp"
#include "connection_guard.hpp"
#include "direct_scheduler.hpp"
#include "endpoints.hpp"
#include "heartbeat.hpp"
#include "hub.hpp"
#include "ipp/net/shm.hpp"
#include "ipp/net/signer.hpp"
#include "relay.hpp"
#include "task_db.hpp"
#include "traffic.hpp"
#include "zap.hpp"

namespace ipp {

namespace {

// The controller's threads reach each other over these inproc sockets.
constexpr const char* kEvents = "inproc://ipp-events";    // hub -> everyone: engine events
constexpr const char* kHubIn = "inproc://ipp-hub-in";     // heartbeat -> hub: engine silent
constexpr const char* kMonitor = "inproc://ipp-monitor";  // schedulers -> hub: copies wait

/// The task database the options ask for (null with --db none). Throws UsageError for an
/// unknown kind, and what TaskDb throws for a corrupt or read-only file.
std::unique_ptr<hub::TaskDb> open_task_db(const ControllerOptions& o) {
  if (o.db == "none") return nullptr;
  if (o.db != "sqlite" && o.db != "memory")
    throw UsageError(fmt::format("unknown task database '{}' (use sqlite, memory or none)", o.db));
  return std::make_unique<hub::TaskDb>(
      hub::TaskDb::Options{.file = o.db == "memory"    ? std::filesystem::path()
                                   : o.db_file.empty() ? o.profile_dir / "tasks.db"
                                                       : o.db_file,
                           .record_limit = o.db_record_limit,
                           .size_limit = o.db_size_limit});
}

/// A thread named `name`, so that `top -H`, `ps -L` and profilers tell the controller's
/// threads apart.
template <typename Body>
std::thread named_thread(const char* name, Body body) {
  return std::thread([name, body = std::move(body)]() mutable {
    pthread_setname_np(pthread_self(), name);
    body();
  });
}

/// Counts a latch down once: when told, or when its thread's part could not be made.
struct MadeOnce {
  std::latch& latch;
  bool done = false;
  void operator()() {
    if (!done) latch.count_down();
    done = true;
  }
  ~MadeOnce() { (*this)(); }
};

}  // namespace

/// What a running controller owns: its options, database, contexts, sockets and threads. Each
/// socket is made and bound in start(), then used by one thread only.
struct Controller::State {
  ControllerOptions options;
  const std::string instance = net::new_id();  // tells clients when the controller restarted
  std::unique_ptr<hub::TaskDb> db;             // used by the hub thread only
  zmq::context_t ctx;
  std::unique_ptr<net::Signer> client_signer;  // the clients' key
  std::unique_ptr<net::Signer> engine_signer;  // the engines' key
  std::atomic<bool> stopping{false};
  ctrl::TrafficFeed traffic;      // schedulers -> hub
  std::filesystem::path shm_dir;  // the cluster's shared memory (empty: none)
  const net::SharedMemory* shm = nullptr;
  std::vector<std::thread> threads;
  zmq::socket_t registration{ctx, zmq::socket_type::router};
  // The heartbeat has a ZeroMQ context (an I/O thread) of its own: a gigabyte message moving
  // through the task channels does not delay the pings.
  zmq::context_t heart_ctx;
  zmq::socket_t heartbeat{heart_ctx, zmq::socket_type::router};
  zmq::socket_t client_direct{ctx, zmq::socket_type::router};
  zmq::socket_t engine_direct{ctx, zmq::socket_type::router};
  zmq::socket_t client_balanced{ctx, zmq::socket_type::router};
  zmq::socket_t engine_balanced{ctx, zmq::socket_type::router};
  std::unique_ptr<ctrl::ConnectionGuard> guard;  // after the sockets: closed before them
  std::unique_ptr<ctrl::ZapHandler> zap;         // when encrypted: checks every handshake
  /// Counted down by each thread once its part is made (its sockets connected and
  /// subscribed): no engine may register before every part hears the hub's events.
  std::latch parts_made{4};
  /// Counted down once the hub has bound its inproc endpoints: the other parts connect to them
  /// only then (libzmq's inproc connect before bind races with the bind completing it).
  std::latch hub_bound{1};

  [[nodiscard]] ctrl::RelayWiring relay_wiring() {
    return {ctx, traffic, shm, *client_signer, *engine_signer, kEvents, kMonitor, instance};
  }
  void start_threads();
};

void Controller::State::start_threads() {
  threads.push_back(named_thread("ipp-hub", [this] {
    if (options.hub_nice != 0)
      (void)setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), options.hub_nice);
    MadeOnce made{parts_made};
    MadeOnce bound{hub_bound};
    ctrl::Hub hub({ctx, registration, *client_signer, *engine_signer, traffic, kEvents, kHubIn,
                   kMonitor, shm_dir},
                  options, db.get(), instance, stopping);
    bound();
    made();
    hub.run();
  }));
  threads.push_back(named_thread("ipp-guard", [this] { guard->run(stopping); }));
  if (zap) threads.push_back(named_thread("ipp-zap", [this] { zap->run(stopping); }));
  threads.push_back(named_thread("ipp-heart", [this] {
    MadeOnce made{parts_made};
    hub_bound.wait();
    ctrl::Heartbeat heart(ctx, heartbeat, *engine_signer, options.heartbeat, kEvents, kHubIn);
    made();
    heart.run(stopping);
  }));
  threads.push_back(named_thread("ipp-direct", [this] {
    MadeOnce made{parts_made};
    hub_bound.wait();
    ctrl::DirectScheduler direct(relay_wiring(), client_direct, engine_direct);
    made();
    direct.run(stopping);
  }));
  threads.push_back(named_thread("ipp-balanced", [this] {
    MadeOnce made{parts_made};
    hub_bound.wait();
    ctrl::BalancedScheduler balanced(
        relay_wiring(), client_balanced, engine_balanced,
        {.scheme = sched::parse_scheme(options.scheme),
         .hwm = options.hwm,
         .seed = static_cast<std::uint64_t>(
             std::chrono::steady_clock::now().time_since_epoch().count()),
         .remember = std::size_t{1} << 20});
    made();
    balanced.run(stopping);
  }));
}

Controller::Controller(ControllerOptions options) : options_(std::move(options)) {}

Controller::~Controller() {
  stop();
  wait();
}

void Controller::start() {
  state_ = std::make_unique<State>();
  State& s = *state_;
  s.options = options_;
  std::filesystem::create_directories(options_.profile_dir);
  (void)sched::parse_scheme(options_.scheme);  // an unknown scheme stops the start
  if (options_.hwm < -1)
    throw UsageError(
        fmt::format("--hwm {} is not allowed (0: unlimited, N > 0: at most N)", options_.hwm));
  // The database first: a corrupt or read-only file stops the start with a clear error.
  s.db = open_task_db(options_);
  ctrl::Endpoints endpoints = ctrl::Endpoints::prepare(options_);
  // Encrypted, every connection authenticates its frames: signatures need not read payloads.
  const auto coverage = net::Signer::for_connection(endpoints.client.curve.on());
  s.client_signer = std::make_unique<net::Signer>(endpoints.client.key, coverage);
  s.engine_signer = std::make_unique<net::Signer>(endpoints.engine.key, coverage);
  s.shm = endpoints.shm;
  s.shm_dir = endpoints.shm_dir;
  ctrl::ControllerSockets sockets{s.registration,  s.heartbeat,       s.client_direct,
                                  s.engine_direct, s.client_balanced, s.engine_balanced};
  ctrl::Endpoints::configure(sockets);
  if (endpoints.encrypted()) {
    // The handler first: a server socket bound before it would let handshakes pass unchecked.
    s.zap = std::make_unique<ctrl::ZapHandler>(std::vector<zmq::context_t*>{&s.ctx, &s.heart_ctx},
                                               endpoints.secrets.client_public,
                                               endpoints.secrets.engine_public);
    endpoints.secure(sockets);
  }
  // Connections are counted before the sockets can accept any.
  rlimit files{};
  (void)::getrlimit(RLIMIT_NOFILE, &files);
  const std::size_t max_connections = ctrl::ConnectionGuard::limit_for(
      files.rlim_cur == RLIM_INFINITY ? UINT64_MAX : files.rlim_cur, ctrl::open_descriptors(),
      options_.max_connections);
  s.guard = std::make_unique<ctrl::ConnectionGuard>(
      std::vector<ctrl::ConnectionGuard::Watched>{{&s.ctx, &s.registration},
                                                  {&s.heart_ctx, &s.heartbeat},
                                                  {&s.ctx, &s.client_direct},
                                                  {&s.ctx, &s.engine_direct},
                                                  {&s.ctx, &s.client_balanced},
                                                  {&s.ctx, &s.engine_balanced}},
      max_connections);
  endpoints.bind(sockets, options_);
  s.start_threads();
  // Engines and clients find the controller through these files: only once every part
  // listens to the hub's events (a scheduler that subscribed late would never learn of the
  // engines that registered before).
  s.parts_made.wait();
  endpoints.write_files(options_.profile_dir);
  spdlog::info(
      "controller listening on {} ({}; profile {}); load balancing: {}, hwm {}; at most {} "
      "connections",
      endpoints.client.endpoint("registration"),
      endpoints.encrypted() ? "encrypted with CURVE" : "not encrypted",
      options_.profile_dir.string(), options_.scheme,
      options_.hwm < 0    ? std::string("engine threads")
      : options_.hwm == 0 ? std::string("none")
                          : std::to_string(options_.hwm),
      max_connections);
}

void Controller::wait() {
  if (!state_) return;
  for (auto& t : state_->threads) {
    if (t.joinable()) t.join();
  }
  if (!state_->shm_dir.empty()) {
    net::SharedMemory::remove(state_->shm_dir);
    state_->shm_dir.clear();
  }
}

void Controller::stop() noexcept {
  if (state_) state_->stopping.store(true);
}

}  // namespace ipp
