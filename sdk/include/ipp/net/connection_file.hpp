#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "ipp/net/curve.hpp"

namespace ipp::net {

/// What a client or an engine needs to reach a controller: its endpoints and the key that
/// signs every message. Stored as JSON, readable by its owner only (mode 0600).
struct ConnectionInfo {
  std::map<std::string, std::string> endpoints;  ///< channel name -> `tcp://127.0.0.1:PORT`
  /// The task channels again as Unix sockets (`ipc://...`) in the shared-memory directory,
  /// for peers on the controller's host: fewer kernel steps per message than TCP on loopback.
  /// Empty when the controller offers none.
  std::map<std::string, std::string> local_endpoints;
  std::string key;  ///< the signing key (hex), see net::Signer
  /// Whose file it is: "client" or "engine" (each holds its own key, see Endpoints); empty
  /// in files that do not say.
  std::string role;
  /// The controller's public CURVE key and this side's pair; empty when it does not encrypt.
  CurveKeys curve;
  std::string signature_scheme = "poly1305-chacha20";
  std::int64_t controller_pid = 0;
  /// The cluster's shared-memory directory and the token in it (see SharedMemory); empty
  /// when the controller uses none.
  std::string shm_dir;
  std::string shm_token;
  /// Where the controller listens (its `--ip`, a host name resolved), which may differ from
  /// the address in `endpoints` (a wildcard listens everywhere, and the files name one
  /// address peers reach it at): a restored controller listens there again.
  std::string listen;

  /// The endpoint of `channel`; throws ConnectionError naming the file's missing channel.
  [[nodiscard]] const std::string& endpoint(const std::string& channel) const;
  /// The endpoint of `channel` for a peer that is `local` (it sees the shared-memory
  /// directory, see SharedMemory::sees): the Unix socket when there is one, else endpoint().
  [[nodiscard]] const std::string& endpoint(const std::string& channel, bool local) const;
};

/// Writes `info` to `path` atomically with mode 0600 (the key is a secret).
/// Throws std::filesystem::filesystem_error.
void write_connection_file(const std::filesystem::path& path, const ConnectionInfo& info);

/// Reads a connection file. Throws ConnectionError saying what is missing or malformed.
ConnectionInfo read_connection_file(const std::filesystem::path& path);

/// Reads the connection file of `role` ("client" or "engine"): throws ConnectionError naming
/// the file when it is the other one's (an engine's file holds no client credentials).
ConnectionInfo read_connection_file(const std::filesystem::path& path, std::string_view role);

/// The profile directory: `explicit_dir` when given, else $IPP_PROFILE_DIR, else
/// ~/.ipp/profile_default.
std::filesystem::path profile_dir(const std::optional<std::filesystem::path>& explicit_dir = {});

/// What only the controller holds, for a restore: its CURVE pair and the public keys of the
/// clients' and the engines' pairs (to tell them apart). Never copied to a peer.
struct ControllerSecrets {
  CurvePair server;
  std::string client_public;
  std::string engine_public;
};

/// Writes `secrets` to `path` atomically with mode 0600.
void write_controller_file(const std::filesystem::path& path, const ControllerSecrets& secrets);
/// Reads them; throws ConnectionError saying what is missing or malformed.
ControllerSecrets read_controller_file(const std::filesystem::path& path);

/// File names inside a profile directory.
inline constexpr const char* kClientFile = "ipp-client.json";
inline constexpr const char* kEngineFile = "ipp-engine.json";
inline constexpr const char* kControllerFile = "ipp-controller.json";  ///< ControllerSecrets

}  // namespace ipp::net
