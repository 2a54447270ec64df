#pragma once

#include <filesystem>

#include <zmq.hpp>

#include "ipp/controller/controller.hpp"
#include "ipp/net/connection_file.hpp"
#include "ipp/net/shm.hpp"

namespace ipp::ctrl {

/// The controller's six listening sockets.
struct ControllerSockets {
  zmq::socket_t& registration;  ///< engines register, clients query and push plugins (hub)
  zmq::socket_t& heartbeat;     ///< engines ping
  zmq::socket_t& client_direct;
  zmq::socket_t& engine_direct;
  zmq::socket_t& client_balanced;
  zmq::socket_t& engine_balanced;
};

/// Where a controller listens and what its peers need to reach it: what goes into the client's
/// and the engines' connection files, and the cluster's shared memory on this host.
///
///     Endpoints ep = Endpoints::prepare(options);   // keys, shared memory
///     ep.configure(sockets);                        // options before binding
///     ep.bind(sockets, options);                    // ports into the infos
///     ep.write_files(options.profile_dir);
struct Endpoints {
  net::ConnectionInfo client;
  net::ConnectionInfo engine;
  /// The controller's CURVE pair and its peers' public keys; empty when it does not encrypt.
  net::ControllerSecrets secrets;
  std::filesystem::path shm_dir;           ///< empty: no shared memory
  const net::SharedMemory* shm = nullptr;  ///< the mapping of shm_dir, when there is one

  /// The largest frame a peer may send the controller: 64 GiB, far above any array ipp moves.
  static constexpr std::int64_t kMaxFrame = std::int64_t{64} << 30;
  /// A connection that has not finished ZeroMQ's handshake this long after it opened is
  /// closed: held connections that never speak do not keep descriptors.
  static constexpr std::chrono::milliseconds kHandshakeTimeout{10000};

  /// A fresh key, or on restore the old connection files (the same ports and key: engines and
  /// clients of the old controller reconnect by themselves); what a dead controller of this
  /// profile left in shared memory is removed; the shared-memory directory is made when
  /// asked for (a restored controller keeps the one its peers use). Throws UsageError when a
  /// restore finds files that disagree, ConnectionError when it finds none.
  [[nodiscard]] static Endpoints prepare(const ControllerOptions& options);

  /// Socket options, before binding: no linger, frames capped at kMaxFrame, handshakes
  /// bounded by kHandshakeTimeout, task channels
  /// without a ZeroMQ send limit (the schedulers decide what reaches an engine), clients' input
  /// taken as the schedulers get to it, engines' routes mandatory (an unknown engine is an
  /// error, not a silent drop).
  static void configure(ControllerSockets& sockets);

  [[nodiscard]] bool encrypted() const noexcept { return !secrets.server.secret_key.empty(); }
  /// Whether `options` ask for encryption: "on", "off", or "auto" (on unless listening on
  /// loopback only). Throws UsageError for another word.
  [[nodiscard]] static bool wants_encryption(const ControllerOptions& options);
  /// Makes every socket a CURVE server with the controller's key, each under the ZAP domain of
  /// who connects to it (see ZapHandler), when encrypted(); before binding.
  void secure(ControllerSockets& sockets) const;

  /// Binds every socket where `options.ip` says (on `options.ports`, the first free ones of
  /// `options.port_range`, or ports chosen by the OS; on restore where the old controller
  /// listened, on its files' ports) and the task channels again as Unix sockets in the
  /// shared-memory directory. The endpoints, naming `options.location`, go into `client` and
  /// `engine`. Throws UsageError when a port is taken, a range is used up, or a host name does
  /// not resolve.
  void bind(ControllerSockets& sockets, const ControllerOptions& options);

  /// Writes both connection files into `profile_dir` (mode 0600), and the controller's own
  /// (net::kControllerFile) when encrypted(), removing a stale one when not.
  void write_files(const std::filesystem::path& profile_dir) const;
};

}  // namespace ipp::ctrl
