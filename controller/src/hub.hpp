#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include <zmq.hpp>

#include "engine_registry.hpp"
#include "hub_queries.hpp"
#include "hub_recorder.hpp"
#include "ipp/controller/controller.hpp"
#include "ipp/net/signer.hpp"
#include "log_limiter.hpp"
#include "plugin_distributor.hpp"
#include "task_db.hpp"
#include "traffic.hpp"

namespace ipp::ctrl {

/// What the hub is wired to.
struct HubWiring {
  zmq::context_t& ctx;          ///< for the inproc sockets it binds
  zmq::socket_t& registration;  ///< bound ROUTER: registrations, queries, plugin pushes
  /// Check what arrives and sign what leaves: clients and engines hold different keys, and
  /// the key a message is signed with says which one sent it (engines may register and
  /// report their plugins, nothing else).
  const net::Signer& client_signer;
  const net::Signer& engine_signer;
  TrafficFeed& traffic;           ///< the schedulers' copies of traffic
  std::string events_endpoint;    ///< PUB of engine events it binds
  std::string hub_in_endpoint;    ///< PULL of the heartbeat monitor's news it binds
  std::string monitor_endpoint;   ///< PULL of the feed's wake-ups it binds
  std::filesystem::path shm_dir;  ///< the cluster's shared memory (empty: none)
};

/// The hub: registration, queries, plugin distribution and the task database, never on a
/// task's path. Its loop takes messages on the registration socket and news from the
/// heartbeat monitor, records the schedulers' traffic copies in batches, stops removed engines,
/// sweeps shared memory, and flushes the database; the work itself is done by its parts
/// (EngineRegistry, PluginDistributor, HubRecorder, HubQueries).
///
///     Hub hub(wiring, options, db, instance);   // on the hub's own thread
///     hub.run(stopping);                        // until stopping is set; engines told to stop
///
/// Not thread-safe: made and run on one thread.
class Hub {
 public:
  /// `db`: the task database (null with --db none); `instance`: this controller's id, which
  /// every query reply carries. Binds the inproc sockets.
  Hub(const HubWiring& wiring, const ControllerOptions& options, hub::TaskDb* db,
      const std::string& instance, std::atomic<bool>& stopping);

  /// Serves until `stopping` is set, then flushes the database and tells every engine to stop.
  void run();

 private:
  /// One turn of the loop: waits for input (at most until `drain_at` or the next flush), serves
  /// it, records a batch of copies when due, and runs the timers.
  void turn(std::chrono::steady_clock::time_point& drain_at);
  void on_registration();
  void send_all(const std::vector<net::Envelope>& messages);
  [[nodiscard]] const net::Signer& signer_for(const net::Envelope& m) const;
  bool refuse(const net::Envelope& env, const net::Header& h, bool from_engine);
  /// Sends what the registry queued: events first, then messages.
  void send_registry();
  void publish_tasks(const net::Header& h);
  void drop_engine(std::int64_t id, const std::string& why, bool crashed);
  bool drain_traffic(std::size_t limit, std::chrono::milliseconds budget);
  void stop_drained();
  void sweep_shared_memory();
  /// Gives freed memory back to the system once the cluster has been idle for a while.
  void trim_when_idle();
  /// Keeps the next engine id in the profile (kEngineIdsFile) once it passes what was saved:
  /// a restored controller gives new engines ids no engine of the profile had.
  void save_engine_ids();

  HubWiring wiring_;
  const ControllerOptions& options_;
  std::atomic<bool>& stopping_;
  zmq::socket_t events_;
  zmq::socket_t hub_in_;
  zmq::socket_t monitor_;
  PluginDistributor plugins_;
  EngineRegistry registry_;
  HubRecorder recorder_;
  HubQueries queries_;
  std::vector<EngineLoadChange> loads_;
  LogLimiter dropped_;  // warnings of dropped messages and failed turns: a flood is a few lines
  /// Plugin name -> its tasks, bare and qualified (from its loads): what an unload takes away.
  std::map<std::string, std::vector<std::string>> plugin_tasks_;
  std::chrono::steady_clock::time_point last_sweep_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_traffic_ = std::chrono::steady_clock::now();
  bool trimmed_ = true;
  std::int64_t saved_next_id_ = 0;
};

}  // namespace ipp::ctrl
