#include "ipp/runtime/plugin_store.hpp"

#include <sodium.h>
#include <unistd.h>

#include <fstream>
#include <iterator>
#include <random>
#include <vector>

#include <fmt/format.h>

#include "ipp/error.hpp"

namespace ipp {

std::string sha256_hex(std::span<const std::byte> bytes) {
  static const int init = sodium_init();  // thread-safe, idempotent
  (void)init;
  unsigned char digest[crypto_hash_sha256_BYTES];
  crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  std::string hex(2 * sizeof digest + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), digest, sizeof digest);
  hex.pop_back();
  return hex;
}

PluginStore::PluginStore(std::filesystem::path dir) : dir_(std::move(dir)) {
  std::filesystem::create_directories(dir_);
}

std::filesystem::path PluginStore::path_for(const std::string& hash) const {
  return dir_ / (hash + ".so");
}

StoredPlugin PluginStore::store_file(const std::filesystem::path& source) const {
  std::ifstream in(source, std::ios::binary);
  if (!in) throw PluginLoadError(fmt::format("cannot read plugin file '{}'", source.string()));
  std::vector<char> data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) throw PluginLoadError(fmt::format("cannot read plugin file '{}'", source.string()));
  return store_bytes(std::as_bytes(std::span<const char>(data)));
}

StoredPlugin PluginStore::store_bytes(std::span<const std::byte> bytes) const {
  StoredPlugin out{sha256_hex(bytes), {}};
  out.path = path_for(out.hash);
  if (std::filesystem::exists(out.path)) return out;
  // Write beside the final name, then rename: readers never see a partial file, and a
  // concurrent store of the same bytes just renames identical content over it.
  const auto tmp =
      dir_ / fmt::format(".{}.{}.{}.tmp", out.hash, ::getpid(), std::random_device{}());
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    f.write(reinterpret_cast<const char*>(bytes.data()),
            static_cast<std::streamsize>(bytes.size()));
    f.close();
    if (!f) {
      std::error_code ec;
      std::filesystem::remove(tmp, ec);
      throw PluginLoadError(fmt::format("cannot write plugin into store '{}'", dir_.string()));
    }
  }
  std::filesystem::permissions(
      tmp, std::filesystem::perms::owner_read | std::filesystem::perms::owner_exec);
  std::filesystem::rename(tmp, out.path);
  return out;
}

}  // namespace ipp
