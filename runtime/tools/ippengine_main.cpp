// ippengine: one engine of an ipp cluster.
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "ipp/error.hpp"
#include "ipp/net/connection_file.hpp"
#include "ipp/net/engine_exit.hpp"
#include "ipp/net/limits.hpp"
#include "ipp/runtime/engine.hpp"
#include "ipp/runtime/output.hpp"

namespace {
ipp::Engine* g_engine = nullptr;
// Set when the engine ends on its own terms (told to stop, lost its controller); any other call
// of exit() comes from a task.
std::atomic<bool> g_deliberate{false};

/// A task that calls exit() ends the process the ordinary way, running static destructors
/// while the pool's threads still run tasks (which crashes: reported as a SIGSEGV before), and
/// exit(0) would read as a stop the controller asked for. Neither is: end at once with a
/// status that says so, and the supervisor restarts the engine as after a crash.
extern "C" void on_task_exit(int status, void*) {
  if (g_deliberate.load()) return;
  spdlog::error("a task called exit({}): the engine ends", status);
  std::_Exit(status == 0 ? ipp::net::kEngineTaskCalledExit : status);
}

extern "C" void on_signal(int) {
  if (g_engine != nullptr) g_engine->stop();
}

/// Built-in plugins sit beside the executable: build/bin -> build/plugins, or
/// PREFIX/bin -> PREFIX/lib/ipp/plugins once installed. The directory, or empty.
std::filesystem::path builtin_dir(const char* argv0) {
  std::error_code ec;
  const auto exe = std::filesystem::canonical("/proc/self/exe", ec);
  const auto bin = ec ? std::filesystem::path(argv0).parent_path() : exe.parent_path();
  for (const auto& dir : {bin / ".." / "plugins", bin / ".." / "lib" / "ipp" / "plugins"}) {
    if (std::filesystem::exists(dir / "sysinfo.so")) return dir;
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
  app.add_option("--max-map-output", options.max_map_output,
                 "Bytes a map's output may take on this engine; a larger one fails before "
                 "anything is allocated (default: 90% of the memory available at the time)");
  int grace_ms = 10000;
  app.add_option("--time-limit-grace-ms", grace_ms,
                 "A task still running this long after its time limit (it ignores "
                 "cancellation) makes the engine exit, to be restarted")
      ->capture_default_str()
      ->check(CLI::Range(0, 24 * 3600 * 1000));
  CLI11_PARSE(app, argc, argv);
  options.time_limit_grace = std::chrono::milliseconds(grace_ms);
  ipp::net::raise_open_files_limit();  // a task may open many files and sockets

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
  if (const auto dir = builtin_dir(argv[0]); !dir.empty()) {
    options.builtin_plugins = {dir / "sysinfo.so"};
    // Python functions and statements (built with the Python client): loaded, and its
    // interpreter started, when the first Python task comes.
    if (std::filesystem::exists(dir / "python.so")) options.on_demand_plugins = {dir / "python.so"};
  }
  try {
    ipp::Engine engine(options);
    g_engine = &engine;
    std::signal(SIGINT, on_signal);
    std::signal(SIGTERM, on_signal);
    ::on_exit(on_task_exit, nullptr);  // after static initialisation: runs before its destructors
    // What a task prints comes back with its result; the rest goes to the log as before.
    ipp::output::install();
    const int code = engine.run();
    g_deliberate = true;
    return code;
  } catch (const ipp::ConnectionError& e) {
    g_deliberate = true;
    spdlog::error("{}", e.what());
    return ipp::net::kEngineLostController;
  } catch (const std::exception& e) {
    g_deliberate = true;
    spdlog::error("{}", e.what());
    return 1;
  }
}
