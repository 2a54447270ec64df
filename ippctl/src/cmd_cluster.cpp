// ippctl's cluster commands: start, stop, status, add, remove, and the hidden supervise. What
// each does is in cluster_cli.cpp.

#include <algorithm>
#include <cctype>
#include <cmath>
#include <memory>
#include <optional>
#include <sstream>

#include <fmt/format.h>

#include "arguments.hpp"
#include "cluster_cli.hpp"
#include "globals.hpp"
#include "ipp/ctl/process.hpp"
#include "ipp/ctl/remote.hpp"
#include "ipp/error.hpp"
#include "ipp/net/address.hpp"

namespace ipp::ctl {

namespace {

struct ClusterArgs {
  int n = 0, heartbeat_ms = 1000;
  EngineSettings engines;
  double time_limit_grace = -1;     // seconds; -1: the engines' default
  double plugin_load_timeout = -1;  // seconds; -1: the controller's default
  std::vector<std::int64_t> engine_ids;
  std::string scheme;
  std::optional<int> hwm;
  bool no_shm = false, no_ipc = false;
  std::string ip, location, port_range, encryption;
  std::vector<int> ports;
  // Engines on other hosts.
  std::string launcher, hosts, hostfile, ssh, remote_engine;

  /// The hosts --hosts and --hostfile name.
  [[nodiscard]] std::vector<RemoteHost> remote_hosts() const {
    std::vector<RemoteHost> out;
    if (!hosts.empty()) out = parse_hosts(hosts);
    if (!hostfile.empty()) {
      for (auto& h : read_hostfile(hostfile))
        out.push_back(std::move(h));
    }
    return out;
  }

  /// Sets `n` and the hosts from -n, --engines (local, ssh, or a number), --hosts and
  /// --hostfile; throws UsageError when they disagree or ask for no engine.
  std::vector<RemoteHost> resolve_engines() {
    auto remote = remote_hosts();
    if (!launcher.empty() && std::all_of(launcher.begin(), launcher.end(),
                                         [](unsigned char c) { return std::isdigit(c); })) {
      if (n != 0) throw UsageError("give the number of engines once: -n N or --engines N");
      n = std::stoi(launcher.substr(0, 5));
      if (n > 1024) throw UsageError("--engines: at most 1024");
    } else if (launcher == "ssh") {
      if (remote.empty())
        throw UsageError(
            "--engines ssh starts engines on the hosts of --hosts HOST:N,... or "
            "--hostfile FILE");
    } else if (launcher == "local") {
      if (!remote.empty())
        throw UsageError("--hosts and --hostfile start engines over ssh, not with --engines local");
    } else if (!launcher.empty()) {
      throw UsageError(fmt::format("--engines '{}': local, ssh, or a number of engines", launcher));
    }
    int total = n;
    for (const auto& h : remote)
      total += h.engines;
    if (total < 1) throw UsageError("no engines asked for: give -n N, or --hosts HOST:N,...");
    if (total > 4096) throw UsageError(fmt::format("{} engines asked for: at most 4096", total));
    return remote;
  }

  /// The engine settings with the ssh command and ippengine's path on other hosts.
  [[nodiscard]] EngineSettings engine_settings() const {
    EngineSettings out = engines;
    if (!ssh.empty()) {
      out.ssh.clear();
      std::istringstream words(ssh);
      for (std::string w; words >> w;)
        out.ssh.push_back(w);
      if (out.ssh.empty()) throw UsageError("--ssh: an empty command");
    }
    out.remote_engine = remote_engine.empty() ? (exe_dir() / "ippengine").string() : remote_engine;
    return out;
  }

  /// The options `cluster start` passes on to ippcontroller.
  [[nodiscard]] std::vector<std::string> controller_args() const {
    std::vector<std::string> out;
    if (!scheme.empty()) out.insert(out.end(), {"--scheme", scheme});
    if (hwm) out.insert(out.end(), {"--hwm", std::to_string(*hwm)});
    if (no_shm) out.emplace_back("--no-shm");
    if (no_ipc) out.emplace_back("--no-ipc");
    if (!ip.empty()) out.insert(out.end(), {"--ip", ip});
    if (!location.empty()) out.insert(out.end(), {"--location", location});
    if (!encryption.empty()) out.insert(out.end(), {"--encryption", encryption});
    if (!ports.empty()) {
      std::string list;
      for (const int p : ports)
        list += (list.empty() ? "" : ",") + std::to_string(p);
      out.insert(out.end(), {"--ports", list});
    }
    if (!port_range.empty()) out.insert(out.end(), {"--port-range", port_range});
    if (plugin_load_timeout >= 0)
      out.insert(out.end(),
                 {"--plugin-load-timeout-ms",
                  std::to_string(std::max<long>(1, std::lround(plugin_load_timeout * 1000)))});
    return out;
  }
};

ClusterCli cluster_cli(const Globals& g) {
  return {
      .profile = g.dir(), .json = g.json, .timeout_ms = g.timeout_ms, .file = g.connection_file()};
}

/// Where engines are started: here, or on other hosts over ssh.
void add_host_options(CLI::App* cmd, ClusterArgs& a) {
  cmd->add_option("--hosts", a.hosts,
                  "Start engines on other hosts over ssh: HOST:N,... (N engines on HOST; HOST "
                  "as ssh takes it: a name, user@name, an alias, [IPv6]:N)");
  cmd->add_option("--hostfile", a.hostfile,
                  "A file of hosts, one HOST:N or HOST N per line (# comments), as --hosts")
      ->check(CLI::ExistingFile);
}

/// Where the controller listens and what its connection files tell peers on other hosts.
void add_network_options(CLI::App* start, ClusterArgs& a) {
  start->add_option("--ip", a.ip,
                    "Address the controller listens on: an IPv4 or IPv6 address, a host name, "
                    "or 0.0.0.0 / :: for every interface (default: 127.0.0.1)");
  start->add_option("--location", a.location,
                    "The address peers reach the controller at, written into the connection "
                    "files (default: --ip, or for 0.0.0.0 this host's first address that is not "
                    "loopback)");
  start
      ->add_option("--encryption", a.encryption,
                   "CURVE encryption of every connection: on, off, or auto (default: on unless "
                   "the controller listens on loopback only)")
      ->check(CLI::IsMember({"auto", "on", "off"}));
  start
      ->add_option("--ports", a.ports,
                   "Fixed ports for registration, heartbeat, direct, engine_direct, balanced and "
                   "engine_balanced, in that order (comma-separated)")
      ->delimiter(',')
      ->expected(6)
      ->check(CLI::Range(1, 65535));
  start
      ->add_option("--port-range", a.port_range,
                   "Each of the controller's sockets takes the first free port of FIRST-LAST")
      ->check([](const std::string& s) -> std::string {
        try {
          (void)net::parse_port_range(s);
          return "";
        } catch (const UsageError& e) {
          return e.what();
        }
      });
  start->get_option("--ports")->excludes(start->get_option("--port-range"));
}

void add_start(CLI::App* cluster, Globals& g, const std::shared_ptr<ClusterArgs>& a) {
  auto* start = cluster->add_subcommand(
      "start",
      "Start a controller, a supervisor and N engines it restarts when they crash; returns when "
      "all are registered");
  start->add_option("-n", a->n, "Number of engines on this host")->check(CLI::Range(0, 1024));
  start->add_option("--engines", a->launcher,
                    "How engines are started: local (default), ssh (on the hosts of --hosts or "
                    "--hostfile), or a number of engines on this host (as -n)");
  add_host_options(start, *a);
  start->add_option("--ssh", a->ssh,
                    "The ssh command, with options, that reaches the hosts (default: ssh; for "
                    "example 'ssh -F ~/cluster/ssh_config'); it must not ask for a password");
  start->add_option("--remote-engine", a->remote_engine,
                    "ippengine's path on the other hosts (default: this host's)");
  start->add_option("--engine-threads", a->engines.threads,
                    "Threads per engine (default: the number of cores)");
  start
      ->add_option("--heartbeat-ms", a->heartbeat_ms,
                   "Heartbeat period: an engine silent this long is dead")
      ->capture_default_str()
      ->check(CLI::Range(20, 600000));
  start->add_flag("--restart-engines,!--no-restart-engines", a->engines.restart,
                  "Restart engines that crash, with a growing back-off (default: on)");
  start->add_flag("--no-shm", a->no_shm,
                  "Large arrays always through the sockets, never shared memory");
  start->add_flag("--no-ipc", a->no_ipc,
                  "Engines and clients on this host use TCP too, never Unix sockets");
  start->add_option(
      "--scheme", a->scheme,
      "Load-balancing scheme: leastload (default), lru, plainrandom, twobin, weighted");
  start
      ->add_option("--hwm", a->hwm,
                   "Tasks outstanding per engine in the load-balanced queue: N at most, 0 no "
                   "limit (default: one per thread, more of the tasks known to be short)")
      ->check(CLI::NonNegativeNumber);
  start
      ->add_option("--time-limit-grace", a->time_limit_grace,
                   "A task still running this long after its --time-limit (it ignores "
                   "cancellation) gets its engine restarted (default: 10)")
      ->check(kSeconds);
  add_network_options(start, *a);
  start
      ->add_option("--plugin-load-timeout", a->plugin_load_timeout,
                   "A push is answered at the latest this long after it came, naming the "
                   "engines still loading; an engine still loading at half as long again "
                   "ends and is restarted without the plugin (default: 30)")
      ->check(kSeconds);
  on(start, g, [&g, a] {
    const auto hosts = a->resolve_engines();
    // Engines on other hosts reach the controller through the network: it listens on every
    // interface (and encrypts) unless told where.
    if (!hosts.empty() && a->ip.empty()) a->ip = "0.0.0.0";
    // A host name that does not resolve is the user's mistake: said before anything starts.
    if (!a->ip.empty()) (void)net::bind_host(a->ip);
    EngineSettings engines = a->engine_settings();
    if (a->time_limit_grace >= 0)
      engines.time_limit_grace_ms = static_cast<int>(std::lround(a->time_limit_grace * 1000));
    return cluster_start(cluster_cli(g), a->n, hosts, engines, a->heartbeat_ms,
                         a->controller_args());
  });
}

}  // namespace

void add_cluster_commands(CLI::App& app, Globals& g) {
  auto a = std::make_shared<ClusterArgs>();
  auto* cluster = app.add_subcommand("cluster", "Start, stop or inspect a local cluster");
  cluster->require_subcommand(1);
  add_start(cluster, g, a);
  on(cluster->add_subcommand("stop", "Stop the controller, its engines and supervisor"), g,
     [&g] { return cluster_stop(cluster_cli(g)); });
  on(cluster->add_subcommand("status", "Show the cluster's processes"), g,
     [&g] { return cluster_status(cluster_cli(g)); });
  auto* add = cluster->add_subcommand(
      "add", "Start N more supervised engines; returns when they are registered");
  add->add_option("-n,--engines", a->n, "Number of engines on this host")
      ->check(CLI::Range(0, 1024));
  add_host_options(add, *a);
  on(add, g, [&g, a] {
    const auto hosts = a->resolve_engines();
    return cluster_add(cluster_cli(g), a->n, hosts);
  });
  auto* remove = cluster->add_subcommand(
      "remove", "Drain engines (their running tasks finish, no new ones start), then stop them");
  remove->add_option("ID", a->engine_ids, "Engine ids")->required()->check(CLI::NonNegativeNumber);
  on(remove, g, [&g, a] { return cluster_remove(cluster_cli(g), a->engine_ids); });
  // The supervisor daemon that cluster start and add run; not for users.
  auto* supervise = cluster->add_subcommand("supervise", "");
  supervise->group("");
  supervise->add_option("-n,--engines", a->n)->required();
  supervise->add_option("--engine-threads", a->engines.threads);
  supervise->add_flag("--restart-engines,!--no-restart-engines", a->engines.restart);
  supervise->add_option("--time-limit-grace-ms", a->engines.time_limit_grace_ms);
  supervise->add_option("--hosts", a->hosts);
  supervise->add_option("--ssh", a->ssh);
  supervise->add_option("--remote-engine", a->remote_engine);
  on(supervise, g, [&g, a] {
    return cluster_supervise(cluster_cli(g), a->n, a->remote_hosts(), a->engine_settings());
  });
}

}  // namespace ipp::ctl
