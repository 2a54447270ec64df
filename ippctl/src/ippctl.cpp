// ippctl: the command line for ipp clusters. run() parses and turns errors into exit codes;
// the subcommands are declared, by group, in the cmd_*.cpp files.

#include "ippctl.hpp"

#include <iostream>

#include "arguments.hpp"
#include "globals.hpp"
#include "interrupt.hpp"
#include "ipp/literal.hpp"
#include "ipp/net/connection_file.hpp"

namespace ipp::ctl {

std::filesystem::path Globals::dir() const {
  return net::profile_dir(profile.empty() ? std::nullopt
                                          : std::optional<std::filesystem::path>(profile));
}

std::optional<std::filesystem::path> Globals::connection_file() const {
  if (file.empty()) return std::nullopt;
  return std::filesystem::path(file);
}

Client Globals::client() const {
  return Client(ClientOptions{
      .profile_dir = dir(), .connection_file = connection_file(), .timeout = Duration(timeout_ms)});
}

int run(int argc, char** argv) {
  CLI::App app{"ippctl: start ipp clusters and run tasks on them"};
  app.require_subcommand(1);
  // The global options below are taken anywhere on the line, after the subcommand too
  // (`ippctl ids --json`): subcommands pass what they do not know on to the app.
  app.fallthrough();
  app.set_version_flag("--version", std::string("ippctl ") + IPP_VERSION);
  Globals g;
  app.add_option("--profile-dir", g.profile,
                 "Profile directory (default: $IPP_PROFILE_DIR or ~/.ipp/profile_default)");
  app.add_option("--file", g.file,
                 "A client connection file (ipp-client.json) of a controller started elsewhere: "
                 "by hand, or on another host")
      ->envname("IPP_CONNECTION_FILE");
  app.add_flag("--json", g.json, "Print one JSON document");
  app.add_option("--timeout-ms", g.timeout_ms, "How long to wait for the controller")
      ->capture_default_str()
      ->check(CLI::Range(1, 24 * 3600 * 1000));
  add_cluster_commands(app, g);
  add_task_commands(app, g);
  add_namespace_commands(app, g);
  add_hub_commands(app, g);

  try {
    app.parse(cli_words(argc, argv));
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? kOk : kUsage;
  }
  try {
    return g.command ? g.command() : kOk;
  } catch (const Interrupted&) {
    return kInterrupted;
  } catch (const SyntaxError& e) {
    std::cerr << "ippctl: bad argument: " << e.what() << "\n";
    return kUsage;
  } catch (const UsageError& e) {
    std::cerr << "ippctl: " << e.what() << "\n";
    return kUsage;
  } catch (const ConnectionError& e) {
    std::cerr << "ippctl: " << e.what() << "\n";
    return kConnection;
  } catch (const Error& e) {
    std::cerr << "ippctl: " << e.what() << "\n";
    return e.code() == ErrorCode::argument && std::string_view(e.what()).starts_with("map")
               ? kUsage
               : kRemote;
  } catch (const std::exception& e) {
    std::cerr << "ippctl: " << e.what() << "\n";
    return kRemote;
  }
}

}  // namespace ipp::ctl
