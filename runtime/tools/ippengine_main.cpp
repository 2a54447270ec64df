// ippengine: one engine of an ipp cluster.
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "ipp/error.hpp"
#include "ipp/net/connection_file.hpp"
#include "ipp/runtime/engine.hpp"

namespace {
ipp::Engine* g_engine = nullptr;
extern "C" void on_signal(int) {
  if (g_engine != nullptr) g_engine->stop();
}

/// Built-in plugins sit beside the executable: build/bin -> build/plugins, or
/// PREFIX/bin -> PREFIX/lib/ipp/plugins once installed.
std::vector<std::filesystem::path> builtin_plugins(const char* argv0) {
  std::error_code ec;
  const auto exe = std::filesystem::canonical("/proc/self/exe", ec);
  const auto bin = ec ? std::filesystem::path(argv0).parent_path() : exe.parent_path();
  for (const auto& dir : {bin / ".." / "plugins", bin / ".." / "lib" / "ipp" / "plugins"}) {
    if (std::filesystem::exists(dir / "sysinfo.so")) return {dir / "sysinfo.so"};
  }
  return {};
}
}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"ippengine: runs tasks for an ipp controller"};
  std::string profile_dir, connection_file, store_dir, log_level = "info";
  ipp::EngineOptions options;
  int heartbeat_ms = 1000, timeout_ms = 10000;
  app.add_option("--profile-dir", profile_dir,
                 "Profile directory (default: $IPP_PROFILE_DIR or ~/.ipp/profile_default)");
  app.add_option("--file", connection_file,
                 "Engine connection file (default: PROFILE/ipp-engine.json)");
  app.add_option("--threads", options.threads, "Pool threads (default: the number of cores)");
  app.add_option("--store", store_dir,
                 "Where pushed plugins are kept (default: a temporary directory)");
  app.add_option("--heartbeat-ms", heartbeat_ms,
                 "Heartbeat period if the controller does not say (it pings 4 times per period)")
      ->capture_default_str();
  app.add_option("--engine-id", options.engine_id,
                 "Register under this id (granted when no other engine holds it)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--controller-timeout-ms", timeout_ms,
                 "Exit after this long without the controller")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error")
      ->capture_default_str();
  app.add_flag("--shm,!--no-shm", options.shared_memory,
               "Take large arrays through shared memory when the controller offers it "
               "(default: on; off behaves as an engine on another host)");
  CLI11_PARSE(app, argc, argv);

  spdlog::set_default_logger(spdlog::stderr_color_mt("ippengine"));
  spdlog::set_level(spdlog::level::from_str(log_level));
  options.connection_file =
      connection_file.empty()
          ? ipp::net::profile_dir(profile_dir.empty()
                                      ? std::nullopt
                                      : std::optional<std::filesystem::path>(profile_dir)) /
                ipp::net::kEngineFile
          : std::filesystem::path(connection_file);
  options.store_dir = store_dir;
  options.heartbeat = std::chrono::milliseconds(heartbeat_ms);
  options.controller_timeout = std::chrono::milliseconds(timeout_ms);
  options.builtin_plugins = builtin_plugins(argv[0]);
  try {
    ipp::Engine engine(options);
    g_engine = &engine;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    return engine.run();
  } catch (const ipp::ConnectionError& e) {
    spdlog::error("{}", e.what());
    return 3;
  } catch (const std::exception& e) {
    spdlog::error("{}", e.what());
    return 1;
  }
}
