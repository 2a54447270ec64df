// ippcontroller: the hub and schedulers of an ipp cluster.
#include <csignal>
#include <cstdio>
#include <optional>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "ipp/controller/controller.hpp"
#include "ipp/error.hpp"
#include "ipp/net/address.hpp"
#include "ipp/net/connection_file.hpp"
#include "ipp/net/limits.hpp"

namespace {
ipp::Controller* g_controller = nullptr;
extern "C" void on_signal(int) {
  if (g_controller != nullptr) g_controller->stop();
}

/// Where the controller listens, and what its connection files tell peers.
void add_network_options(CLI::App& app, ipp::ControllerOptions& options) {
  app.add_option("--ip", options.ip,
                 "Address to listen on: an IPv4 or IPv6 address, a host name, or 0.0.0.0 / :: "
                 "for every interface")
      ->capture_default_str();
  app.add_option("--location", options.location,
                 "The address peers reach this controller at, written into the connection "
                 "files (default: --ip, or for 0.0.0.0 this host's first address that is not "
                 "loopback)");
  app.add_option("--encryption", options.encryption,
                 "CURVE encryption of every connection: on, off, or auto (on unless listening "
                 "on loopback only)")
      ->check(CLI::IsMember({"auto", "on", "off"}))
      ->capture_default_str();
  app.add_option("--ports", options.ports,
                 "Fixed ports for registration, heartbeat, direct, engine_direct, balanced and "
                 "engine_balanced, in that order (comma-separated)")
      ->delimiter(',')
      ->expected(6)
      ->check(CLI::Range(1, 65535));
  app.add_option_function<std::string>(
      "--port-range",
      [&options](const std::string& s) {
        try {
          options.port_range = ipp::net::parse_port_range(s);
        } catch (const ipp::UsageError& e) {
          throw CLI::ValidationError("--port-range", e.what());
        }
      },
      "Each socket takes the first free port of FIRST-LAST (for a firewall)");
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ippcontroller: hub and schedulers of an ipp cluster"};
  std::string profile_dir, log_level = "info";
  ipp::ControllerOptions options;
  int heartbeat_ms = 1000;
  app.add_option("--profile-dir", profile_dir,
                 "Profile directory (default: $IPP_PROFILE_DIR or ~/.ipp/profile_default)");
  add_network_options(app, options);
  app.add_option("--heartbeat-ms", heartbeat_ms,
                 "Heartbeat period: engines ping 4 times per period and one silent for a whole "
                 "period is dead")
      ->capture_default_str()
      ->check(CLI::Range(20, 600000));
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  std::string db_file;
  std::int64_t hub_delay_us = 0;
  app.add_option("--db", options.db, "Task database: sqlite (PROFILE/tasks.db), memory or none")
      ->check(CLI::IsMember({"sqlite", "memory", "none"}))
      ->capture_default_str();
  app.add_option("--db-file", db_file, "SQLite file (default: PROFILE/tasks.db)");
  app.add_option("--db-record-limit", options.db_record_limit,
                 "Keep at most this many task records, dropping the oldest (0: no limit)")
      ->capture_default_str();
  app.add_option("--db-size-limit", options.db_size_limit,
                 "Keep at most this many bytes of stored arguments and results (0: no limit)")
      ->capture_default_str();
  app.add_option("--db-max-payload", options.db_max_payload,
                 "Arguments or results larger than this many bytes are recorded by size only")
      ->capture_default_str();
  app.add_option("--hub-delay-us", hub_delay_us,
                 "Debugging: slow the hub down by this much per record it writes")
      ->capture_default_str();
  std::int64_t plugin_load_timeout_ms = options.plugin_load_timeout.count();
  app.add_option("--plugin-load-timeout-ms", plugin_load_timeout_ms,
                 "Answer a plugin push after this long, naming engines still loading it")
      ->capture_default_str()
      ->check(CLI::Range(std::int64_t{10}, std::int64_t{3600} * 1000));
  app.add_option("--hub-nice", options.hub_nice,
                 "Scheduling niceness of the hub's thread (task records, registration, "
                 "queries) relative to the schedulers: under full load the task path gets the "
                 "CPU and the hub catches up after")
      ->capture_default_str()
      ->check(CLI::Range(0, 19));
  app.add_flag("--restore", options.restore,
               "Take over the profile of a controller that died: same ports and key, the "
               "plugins pushed before, the task database; engines come back with their ids");
  app.add_option("--scheme", options.scheme,
                 "How the load-balanced queue picks an engine: leastload, lru, plainrandom, "
                 "twobin, weighted")
      ->check(CLI::IsMember({"leastload", "lru", "plainrandom", "twobin", "weighted"}))
      ->capture_default_str();
  app.add_option("--hwm", options.hwm,
                 "Outstanding load-balanced tasks per engine: N at most, 0 no limit (default: "
                 "one per pool thread, and more of the tasks known to take under 0.5 ms)")
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--shm,!--no-shm", options.shared_memory,
               "Offer clients and engines on this host shared memory for large arrays "
               "(default: on)");
  app.add_flag("--ipc,!--no-ipc", options.local_sockets,
               "Offer clients and engines on this host the task channels as Unix sockets too, "
               "in the shared-memory directory (default: on)");
  app.add_option("--shm-root", options.shm_root,
                 "Where the shared-memory directory is made (a tmpfs)")
      ->capture_default_str();
  app.add_option("--max-connections", options.max_connections,
                 "Connections held at once, from every peer; more are refused (default: as "
                 "many as the descriptor limit leaves room for)");
  CLI11_PARSE(app, argc, argv);
  options.db_file = db_file;
  options.hub_delay = std::chrono::microseconds(hub_delay_us);
  options.plugin_load_timeout = std::chrono::milliseconds(plugin_load_timeout_ms);

  spdlog::set_default_logger(spdlog::stderr_color_mt("ippcontroller"));
  spdlog::set_level(spdlog::level::from_str(log_level));
  options.profile_dir = ipp::net::profile_dir(
      profile_dir.empty() ? std::nullopt : std::optional<std::filesystem::path>(profile_dir));
  options.heartbeat = std::chrono::milliseconds(heartbeat_ms);
  ipp::net::raise_open_files_limit();
  try {
    ipp::Controller controller(options);
    g_controller = &controller;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    controller.start();
    controller.wait();
    g_controller = nullptr;
    return 0;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
