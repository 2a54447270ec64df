#include "ipp/net/connection_file.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "ipp/error.hpp"

namespace ipp::net {

const std::string& ConnectionInfo::endpoint(const std::string& channel) const {
  auto it = endpoints.find(channel);
  if (it == endpoints.end()) {
    throw ConnectionError(fmt::format("the connection file has no '{}' endpoint", channel));
  }
  return it->second;
}

const std::string& ConnectionInfo::endpoint(const std::string& channel, bool local) const {
  if (local) {
    if (auto it = local_endpoints.find(channel); it != local_endpoints.end()) return it->second;
  }
  return endpoint(channel);
}

namespace {

/// Writes `j` to `path` atomically, readable by its owner only (it holds keys).
void write_private(const std::filesystem::path& path, const nlohmann::json& j) {
  std::filesystem::create_directories(path.parent_path());
  const auto tmp =
      path.parent_path() / fmt::format(".{}.{}.tmp", path.filename().string(), ::getpid());
  {
    // Create with 0600 from the start: the key is never readable by others, even briefly.
    const mode_t old = ::umask(077);
    std::ofstream out(tmp, std::ios::trunc);
    ::umask(old);
    out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
    out.close();
    if (!out) {
      throw std::filesystem::filesystem_error("cannot write connection file", tmp,
                                              std::make_error_code(std::errc::io_error));
    }
  }
  std::filesystem::permissions(
      tmp, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write,
      std::filesystem::perm_options::replace);
  std::filesystem::rename(tmp, path);
}

}  // namespace

void write_connection_file(const std::filesystem::path& path, const ConnectionInfo& info) {
  nlohmann::json j;
  j["endpoints"] = info.endpoints;
  if (!info.local_endpoints.empty()) j["local_endpoints"] = info.local_endpoints;
  j["key"] = info.key;
  if (!info.role.empty()) j["role"] = info.role;
  j["signature_scheme"] = info.signature_scheme;
  j["controller_pid"] = info.controller_pid;
  if (!info.shm_dir.empty()) j["shm"] = {{"dir", info.shm_dir}, {"token", info.shm_token}};
  if (!info.listen.empty()) j["listen"] = info.listen;
  if (info.curve.on()) {
    j["curve"] = {{"server_key", info.curve.server_key},
                  {"public_key", info.curve.public_key},
                  {"secret_key", info.curve.secret_key}};
  }
  write_private(path, j);
}

ConnectionInfo read_connection_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) {
    throw ConnectionError(fmt::format(
        "no connection file at '{}': is a controller running for this profile?", path.string()));
  }
  ConnectionInfo info;
  try {
    const auto j = nlohmann::json::parse(in);
    info.endpoints = j.at("endpoints").get<std::map<std::string, std::string>>();
    if (j.contains("local_endpoints"))
      info.local_endpoints = j.at("local_endpoints").get<std::map<std::string, std::string>>();
    info.key = j.at("key").get<std::string>();
    info.role = j.value("role", std::string());
    info.signature_scheme = j.value("signature_scheme", "poly1305-chacha20");
    info.controller_pid = j.value("controller_pid", std::int64_t{0});
    if (j.contains("shm")) {
      info.shm_dir = j.at("shm").at("dir").get<std::string>();
      info.shm_token = j.at("shm").at("token").get<std::string>();
    }
    info.listen = j.value("listen", std::string());
    if (j.contains("curve")) {
      const auto& c = j.at("curve");
      info.curve = {c.at("server_key").get<std::string>(), c.at("public_key").get<std::string>(),
                    c.at("secret_key").get<std::string>()};
    }
  } catch (const nlohmann::json::exception& e) {
    throw ConnectionError(
        fmt::format("connection file '{}' is malformed: {}", path.string(), e.what()));
  }
  if (info.signature_scheme != "poly1305-chacha20") {
    throw ConnectionError(fmt::format("connection file '{}' uses unknown signature scheme '{}'",
                                      path.string(), info.signature_scheme));
  }
  return info;
}

ConnectionInfo read_connection_file(const std::filesystem::path& path, std::string_view role) {
  ConnectionInfo info = read_connection_file(path);
  if (!info.role.empty() && info.role != role) {
    throw ConnectionError(fmt::format("'{}' is {} connection file: {} needs the {}'s ({})",
                                      path.string(),
                                      info.role == "engine" ? "an engine's" : "a client's",
                                      role == "engine" ? "an engine" : "a client", role,
                                      role == "engine" ? kEngineFile : kClientFile));
  }
  return info;
}

void write_controller_file(const std::filesystem::path& path, const ControllerSecrets& secrets) {
  write_private(path, {{"curve",
                        {{"server_public", secrets.server.public_key},
                         {"server_secret", secrets.server.secret_key},
                         {"client_public", secrets.client_public},
                         {"engine_public", secrets.engine_public}}}});
}

ControllerSecrets read_controller_file(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) {
    throw ConnectionError(fmt::format(
        "no controller file at '{}': the controller's keys to restore are missing", path.string()));
  }
  try {
    const auto c = nlohmann::json::parse(in).at("curve");
    return {{c.at("server_public").get<std::string>(), c.at("server_secret").get<std::string>()},
            c.at("client_public").get<std::string>(),
            c.at("engine_public").get<std::string>()};
  } catch (const nlohmann::json::exception& e) {
    throw ConnectionError(
        fmt::format("controller file '{}' is malformed: {}", path.string(), e.what()));
  }
}

std::filesystem::path profile_dir(const std::optional<std::filesystem::path>& explicit_dir) {
  if (explicit_dir && !explicit_dir->empty()) return *explicit_dir;
  if (const char* env = std::getenv("IPP_PROFILE_DIR"); env != nullptr && *env != '\0') return env;
  const char* home = std::getenv("HOME");
  return std::filesystem::path(home != nullptr && *home != '\0' ? home : "/tmp") / ".ipp" /
         "profile_default";
}

}  // namespace ipp::net
