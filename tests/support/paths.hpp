#pragma once

#include <unistd.h>

#include <filesystem>
#include <random>
#include <string>

namespace ipp::test {

/// A built plugin from the project (samples and built-ins).
inline std::filesystem::path plugin(const std::string& name) {
  return std::filesystem::path(IPP_PLUGIN_DIR) / (name + ".so");
}

/// A plugin built only for tests (tests/plugins).
inline std::filesystem::path test_plugin(const std::string& name) {
  return std::filesystem::path(IPP_TEST_PLUGIN_DIR) / (name + ".so");
}

/// A fresh directory removed when the object dies.
class TempDir {
 public:
  TempDir() {
    std::random_device rd;
    path_ = std::filesystem::temp_directory_path() /
            ("ipp-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

}  // namespace ipp::test
