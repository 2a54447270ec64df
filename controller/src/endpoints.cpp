#include "endpoints.hpp"

#include <signal.h>
#include <sys/un.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "ipp/error.hpp"
#include "ipp/net/address.hpp"
#include "ipp/net/header.hpp"
#include "ipp/net/signer.hpp"
#include "zap.hpp"

namespace ipp::ctrl {

namespace {

/// What a controller of this profile that died left in shared memory goes now.
void remove_dead_controllers_memory(const std::filesystem::path& profile_dir) {
  try {
    const auto old = net::read_connection_file(profile_dir / net::kClientFile);
    if (!old.shm_dir.empty() &&
        (old.controller_pid <= 0 || ::kill(static_cast<pid_t>(old.controller_pid), 0) != 0))
      net::SharedMemory::remove(old.shm_dir);
  } catch (const std::exception&) {
    // no earlier controller, or nothing readable of it
  }
}

}  // namespace

Endpoints Endpoints::prepare(const ControllerOptions& options) {
  Endpoints ep;
  if (options.restore) {
    ep.client = net::read_connection_file(options.profile_dir / net::kClientFile);
    ep.engine = net::read_connection_file(options.profile_dir / net::kEngineFile);
  } else {
    // Two keys: an engine's file lets it register, heartbeat and reply, never act as a client.
    ep.client.key = net::Signer::new_key();
    ep.engine.key = net::Signer::new_key();
    remove_dead_controllers_memory(options.profile_dir);
  }
  if (options.restore) {
    if (ep.client.curve.on())
      ep.secrets = net::read_controller_file(options.profile_dir / net::kControllerFile);
  } else if (wants_encryption(options)) {
    // A pair for the controller, one for all clients and one for all engines: the controller
    // tells clients and engines apart by their public keys (see ZapHandler).
    ep.secrets.server = net::CurvePair::generate();
    const auto clients = net::CurvePair::generate();
    const auto engines = net::CurvePair::generate();
    ep.secrets.client_public = clients.public_key;
    ep.secrets.engine_public = engines.public_key;
    ep.client.curve = {ep.secrets.server.public_key, clients.public_key, clients.secret_key};
    ep.engine.curve = {ep.secrets.server.public_key, engines.public_key, engines.secret_key};
  }
  if (options.shared_memory) {
    // Large arrays between processes of this host go through files here (see SharedMemory).
    // A restored controller keeps the directory its engines and clients already use.
    const std::filesystem::path dir =
        options.restore && !ep.client.shm_dir.empty()
            ? std::filesystem::path(ep.client.shm_dir)
            : options.shm_root / ("ipp-" + net::new_id().substr(16));  // the random half
    net::SharedMemory::remove_abandoned(options.shm_root, std::chrono::minutes(10));
    try {
      const std::string token = net::SharedMemory::create(dir);
      ep.shm = net::SharedMemory::open(dir, token);
      if (ep.shm != nullptr) {
        ep.shm_dir = dir;
        ep.client.shm_dir = ep.engine.shm_dir = dir.string();
        ep.client.shm_token = ep.engine.shm_token = token;
      }
    } catch (const std::exception& e) {
      spdlog::warn("no shared memory for large arrays ({}): they travel through the sockets",
                   e.what());
    }
  }
  if (ep.shm_dir.empty())
    ep.client.shm_dir = ep.engine.shm_dir = ep.client.shm_token = ep.engine.shm_token = "";
  ep.client.controller_pid = ep.engine.controller_pid = ::getpid();
  ep.client.role = "client";
  ep.engine.role = "engine";
  return ep;
}

void Endpoints::configure(ControllerSockets& s) {
  for (auto* sock : {&s.registration, &s.heartbeat, &s.client_direct, &s.engine_direct,
                     &s.client_balanced, &s.engine_balanced}) {
    sock->set(zmq::sockopt::linger, 0);
    // A frame announced larger than this closes the connection instead of being allocated:
    // random bytes can read as an old-style frame header of any length, and ZeroMQ would ask
    // for that much memory at once (and abort when it cannot have it).
    sock->set(zmq::sockopt::maxmsgsize, kMaxFrame);
    sock->set(zmq::sockopt::handshake_ivl, static_cast<int>(kHandshakeTimeout.count()));
  }
  // Task channels send without limit in ZeroMQ: a full pipe would make a router drop a reply
  // (to a client) or refuse a task (to an engine). How much reaches an engine is the
  // schedulers' decision (--hwm), and a client holds a result for every task it submitted.
  for (auto* sock : {&s.client_direct, &s.engine_direct, &s.client_balanced, &s.engine_balanced}) {
    sock->set(zmq::sockopt::sndhwm, 0);
    sock->set(zmq::sockopt::rcvhwm, 0);
  }
  // What clients send is taken in as the schedulers get to it: a client that submits faster
  // than they take tasks in waits at the socket (TCP pushes back, the client's queue holds the
  // rest) instead of the controller buffering its flood unread. Receiving loses nothing.
  for (auto* sock : {&s.client_direct, &s.client_balanced})
    sock->set(zmq::sockopt::rcvhwm, 64);
  s.engine_direct.set(zmq::sockopt::router_mandatory, true);
  s.engine_balanced.set(zmq::sockopt::router_mandatory, true);
}

bool Endpoints::wants_encryption(const ControllerOptions& options) {
  if (options.encryption == "on") return true;
  if (options.encryption == "off") return false;
  if (options.encryption != "auto") {
    throw UsageError(fmt::format("--encryption {} is not on, off or auto", options.encryption));
  }
  try {
    return !net::is_loopback(net::bind_host(options.ip));
  } catch (const UsageError&) {
    return true;  // a name that does not resolve: bind() says so
  }
}

void Endpoints::secure(ControllerSockets& s) const {
  if (!encrypted()) return;
  const std::string& key = secrets.server.secret_key;
  net::secure_server(s.registration, key, ZapHandler::kRegistration);
  net::secure_server(s.heartbeat, key, ZapHandler::kEngines);
  net::secure_server(s.client_direct, key, ZapHandler::kClients);
  net::secure_server(s.engine_direct, key, ZapHandler::kEngines);
  net::secure_server(s.client_balanced, key, ZapHandler::kClients);
  net::secure_server(s.engine_balanced, key, ZapHandler::kEngines);
}

void Endpoints::bind(ControllerSockets& s, const ControllerOptions& options) {
  if (!options.ports.empty() && options.ports.size() != 6) {
    throw UsageError(fmt::format(
        "--ports takes 6 ports (registration, heartbeat, direct, engine_direct, balanced, "
        "engine_balanced), not {}",
        options.ports.size()));
  }
  const auto [first, last] = options.port_range;
  if (first != 0 && (first < 1 || last > 65535 || first > last))
    throw UsageError(fmt::format("--port-range {}-{} is not a range of ports", first, last));
  // Fresh: where --ip says, on the ports asked for (else chosen by the OS), and the files
  // name --location. Restored: where the old controller listened, on the ports in its files.
  const std::string listen =
      options.restore && !client.listen.empty() ? client.listen : net::bind_host(options.ip);
  const std::string location =
      options.location.empty() ? net::default_location(options.ip) : options.location;
  int next_in_range = first;
  std::size_t index = 0;
  auto bind_one = [&](zmq::socket_t& sock, const net::ConnectionInfo& info, const char* channel) {
    const std::size_t which = index++;
    if (options.restore) {
      const int port = net::port_of(info.endpoint(channel));
      const std::string at = net::tcp_endpoint(listen, std::to_string(port));
      try {
        net::bind(sock, at);
      } catch (const zmq::error_t& e) {
        throw UsageError(fmt::format(
            "restore: cannot listen on {} again ({}): is the old controller still running?", at,
            e.what()));
      }
      return info.endpoint(channel);
    }
    if (!options.ports.empty()) {
      const std::string at = net::tcp_endpoint(listen, std::to_string(options.ports[which]));
      try {
        net::bind(sock, at);
      } catch (const zmq::error_t& e) {
        throw UsageError(fmt::format("cannot listen on {} for {}: {}", at, channel, e.what()));
      }
      return net::tcp_endpoint(location, std::to_string(options.ports[which]));
    }
    if (first != 0) {
      for (; next_in_range <= last; ++next_in_range) {
        try {
          net::bind(sock, net::tcp_endpoint(listen, std::to_string(next_in_range)));
          return net::tcp_endpoint(location, std::to_string(next_in_range++));
        } catch (const zmq::error_t&) {
          // taken: the next one
        }
      }
      throw UsageError(
          fmt::format("--port-range {}-{} has no free port left for {}", first, last, channel));
    }
    try {
      net::bind(sock, net::tcp_endpoint(listen, "*"));
    } catch (const zmq::error_t& e) {
      throw UsageError(fmt::format("cannot listen on {}: {}", listen, e.what()));
    }
    const std::string bound = sock.get(zmq::sockopt::last_endpoint);
    return net::tcp_endpoint(location, std::to_string(net::port_of(bound)));
  };
  const auto reg = bind_one(s.registration, client, "registration");
  client.endpoints["registration"] = engine.endpoints["registration"] = reg;
  engine.endpoints["heartbeat"] = bind_one(s.heartbeat, engine, "heartbeat");
  client.endpoints["direct"] = bind_one(s.client_direct, client, "direct");
  engine.endpoints["engine_direct"] = bind_one(s.engine_direct, engine, "engine_direct");
  client.endpoints["balanced"] = bind_one(s.client_balanced, client, "balanced");
  engine.endpoints["engine_balanced"] = bind_one(s.engine_balanced, engine, "engine_balanced");
  client.listen = engine.listen = listen;
  // The task channels again as Unix sockets, for peers on this host; after the TCP binds,
  // which fail while an old controller of a restored profile still runs.
  client.local_endpoints.clear();
  engine.local_endpoints.clear();
  if (!options.local_sockets || shm_dir.empty()) return;
  auto bind_local = [&](zmq::socket_t& sock, net::ConnectionInfo& info, const char* channel) {
    const std::string at = "ipc://" + (shm_dir / fmt::format("{}.sock", channel)).string();
    if (at.size() - 6 >= sizeof(sockaddr_un::sun_path)) {
      spdlog::info("no Unix socket for {}: the path {} is too long", channel, at);
      return;
    }
    sock.bind(at);
    info.local_endpoints[channel] = at;
  };
  bind_local(s.client_direct, client, "direct");
  bind_local(s.engine_direct, engine, "engine_direct");
  bind_local(s.client_balanced, client, "balanced");
  bind_local(s.engine_balanced, engine, "engine_balanced");
}

void Endpoints::write_files(const std::filesystem::path& profile_dir) const {
  if (encrypted()) {
    net::write_controller_file(profile_dir / net::kControllerFile, secrets);
  } else {
    std::error_code ec;
    std::filesystem::remove(profile_dir / net::kControllerFile, ec);
  }
  net::write_connection_file(profile_dir / net::kEngineFile, engine);
  net::write_connection_file(profile_dir / net::kClientFile, client);
}

}  // namespace ipp::ctrl
