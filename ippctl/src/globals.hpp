#pragma once

// What every ippctl subcommand shares: the global options, the exit codes, and the one
// action the chosen subcommand sets for run() to do after parsing.

#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "ipp/client.hpp"

namespace ipp::ctl {

/// ippctl's exit codes: success, a remote error, a usage error, no controller, and stopped by
/// Ctrl-C (128 + SIGINT, as a shell reports it).
constexpr int kOk = 0, kRemote = 1, kUsage = 2, kConnection = 3, kInterrupted = 130;

struct Globals {
  std::string profile;     ///< --profile-dir, empty for the default
  std::string file;        ///< --file or $IPP_CONNECTION_FILE: a client connection file
  bool json = false;       ///< --json: print one JSON document
  int timeout_ms = 10000;  ///< --timeout-ms: how long to wait for the controller
  /// What the chosen subcommand does, set by its callback; returns the exit code. Errors
  /// are thrown (run() turns them into messages and exit codes).
  std::function<int()> command;

  /// The profile directory: --profile-dir, $IPP_PROFILE_DIR or ~/.ipp/profile_default.
  [[nodiscard]] std::filesystem::path dir() const;
  /// The client connection file given (--file), if any.
  [[nodiscard]] std::optional<std::filesystem::path> connection_file() const;
  /// A client of the cluster: the one --file names, else the profile's.
  [[nodiscard]] Client client() const;
};

/// Makes `action` what ippctl does when `cmd` is the subcommand given.
inline void on(CLI::App* cmd, Globals& g, std::function<int()> action) {
  cmd->callback([&g, action = std::move(action)] { g.command = action; });
}

/// The groups of subcommands, each in a source of its own.
void add_cluster_commands(CLI::App& app, Globals& g);    // cmd_cluster.cpp
void add_task_commands(CLI::App& app, Globals& g);       // cmd_tasks.cpp
void add_namespace_commands(CLI::App& app, Globals& g);  // cmd_namespace.cpp
void add_hub_commands(CLI::App& app, Globals& g);        // cmd_hub.cpp

}  // namespace ipp::ctl
