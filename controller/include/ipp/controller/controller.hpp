#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ipp {

struct ControllerOptions {
  std::filesystem::path profile_dir;  ///< connection files and pushed plugins live here
  /// Where to listen: an address (IPv4 or IPv6), a host name, or a wildcard (`0.0.0.0`,
  /// `::`, `*`) for every interface.
  std::string ip = "127.0.0.1";
  /// The address peers reach the controller at, written into the connection files (a host
  /// name or an address); empty: `ip`, or for a wildcard this host's first address that is
  /// not loopback (net::default_location).
  std::string location;
  /// CURVE encryption of every connection: "on", "off", or "auto" (on unless the controller
  /// listens on loopback only). A restore keeps what the profile's files say.
  std::string encryption = "auto";
  /// The ports of registration, heartbeat, direct, engine_direct, balanced and
  /// engine_balanced, in that order (through a firewall); empty: see port_range.
  std::vector<int> ports;
  /// With no `ports`: each socket takes the first free port from `first` to `last`; {0, 0}:
  /// ports chosen by the OS.
  std::pair<int, int> port_range{0, 0};
  /// The heartbeat period: engines ping four times per period (the controller tells them so
  /// when they register), and an engine silent for one whole period is declared dead.
  std::chrono::milliseconds heartbeat{1000};
  std::string db = "sqlite";      ///< task database: "sqlite", "memory" or "none"
  std::filesystem::path db_file;  ///< sqlite: default PROFILE/tasks.db
  /// Keep at most this many records, dropping the oldest (0: no limit). The database holds
  /// every task's arguments and results: a default bound keeps a long-lived cluster's disk.
  std::int64_t db_record_limit = 1'000'000;
  /// Keep at most this many bytes of stored arguments and results (0: no limit).
  std::int64_t db_size_limit = std::int64_t{8} << 30;
  /// Arguments or results larger than this are recorded by size only (not kept).
  std::int64_t db_max_payload = 64LL << 20;
  /// Niceness of the hub's thread (records, registration, queries) against the schedulers'
  /// (0 to 19). The hub is never on a task's path: when the CPU is short it falls behind
  /// and catches up, and the schedulers and engines get the CPU.
  int hub_nice = 10;
  std::chrono::microseconds hub_delay{0};  ///< debugging: the hub sleeps this long per record
  /// A plugin push is answered at the latest this long after it came, naming the engines that
  /// had not finished loading it (an initializer that hangs).
  std::chrono::milliseconds plugin_load_timeout{30000};
  /// Restart on the profile of a controller that died: the same connection files (ports and
  /// key), the plugins pushed before, the task database; engines re-register with their ids.
  bool restore = false;
  /// How the load-balanced queue picks an engine: leastload, lru, plainrandom, twobin or
  /// weighted (see docs/scheduling.md).
  std::string scheme = "leastload";
  /// Outstanding load-balanced tasks per engine: -1 = the engine's pool threads, 0 = no
  /// limit, N = at most N.
  int hwm = -1;
  /// Offer clients and engines on this host shared memory for large arrays: a directory
  /// `ipp-...` under `shm_root` (tmpfs), removed when the controller stops.
  bool shared_memory = true;
  std::filesystem::path shm_root = "/dev/shm";
  /// Also offer the task channels as Unix sockets in that directory: peers that see it (on
  /// this host) use them instead of TCP on loopback. Needs `shared_memory`.
  bool local_sockets = true;
  /// Connections the controller holds at once, from every peer on every channel; more are
  /// refused (closed at once). 0: as many as its descriptor limit leaves room for.
  std::size_t max_connections = 0;
};

/// The controller: a hub (registration, queries, plugin distribution, and a monitor that sees
/// a copy of every task message) and schedulers (a direct queue and a load-balanced queue),
/// plus a heartbeat monitor, each on its own thread with its own sockets. The hub never sits
/// on the path of a task: schedulers route tasks and send the hub copies.
///
///     ipp::Controller c({.profile_dir = dir});
///     c.start();            // binds, writes the connection files, returns
///     c.wait();             // until a client asks for shutdown, or stop()
class Controller {
 public:
  explicit Controller(ControllerOptions options);
  ~Controller();
  Controller(const Controller&) = delete;
  Controller& operator=(const Controller&) = delete;

  /// Binds every socket, writes the client and engine connection files, starts the threads.
  /// Throws std::exception when a socket cannot be bound or a file written.
  void start();
  /// Blocks until the controller stops.
  void wait();
  /// Asks every thread to stop and tells engines to exit; thread-safe, idempotent.
  void stop() noexcept;

 private:
  struct State;
  ControllerOptions options_;
  std::unique_ptr<State> state_;
};

}  // namespace ipp
