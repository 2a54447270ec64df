#pragma once

#include <cstddef>
#include <filesystem>
#include <span>
#include <string>

namespace ipp {

/// A plugin file kept in a PluginStore.
struct StoredPlugin {
  std::string hash;            ///< SHA-256 of the file, lowercase hex
  std::filesystem::path path;  ///< `<store>/<hash>.so`
};

/// Keeps plugin files content-addressed: each under the SHA-256 of its bytes, never
/// overwritten. The dynamic loader returns the same handle for the same path, so a new
/// build copied over an old path would run the old code; distinct names make every build
/// load as itself. Thread-safe: concurrent stores of the same bytes are harmless.
class PluginStore {
 public:
  /// Uses (and creates) `dir`. Throws std::filesystem::filesystem_error.
  explicit PluginStore(std::filesystem::path dir);

  /// Copies the file at `source` into the store. Throws PluginLoadError when it cannot be read.
  StoredPlugin store_file(const std::filesystem::path& source) const;
  /// Writes `bytes` into the store (plugins pushed over the network arrive this way).
  StoredPlugin store_bytes(std::span<const std::byte> bytes) const;
  /// Where a plugin of this hash is kept (it may not exist).
  [[nodiscard]] std::filesystem::path path_for(const std::string& hash) const;
  [[nodiscard]] const std::filesystem::path& dir() const noexcept { return dir_; }

 private:
  std::filesystem::path dir_;
};

/// SHA-256 of `bytes` as lowercase hex.
std::string sha256_hex(std::span<const std::byte> bytes);

}  // namespace ipp
