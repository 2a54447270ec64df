#pragma once

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "ipp/abi.h"

namespace boost::dll {
class shared_library;
}

namespace ipp {

/// What a plugin says about one of its tasks.
struct TaskInfo {
  std::string name;       ///< bare name (`mul`)
  std::string plugin;     ///< plugin name (`arith`)
  std::string signature;  ///< `mul(int64, int64) -> int64`
  std::string doc;
  std::int32_t arity = 0;
  std::int32_t result_dtype = -1;
  [[nodiscard]] std::string qualified_name() const { return plugin + "." + name; }
};

/// How a task's calls in this process went lately, as the Runtime learns it to tell quick
/// tasks (see Runtime::kQuickBelow): the calls so far, and the count at the last slow one.
struct CallTimes {
  std::atomic<std::uint32_t> runs{0};
  std::atomic<std::uint32_t> last_slow{0};
};

/// What is known of a plugin file before it is loaded.
struct PluginFileInfo {
  bool has_manifest = false;
};

/// A plugin loaded into this process. Its code stays mapped for as long as this object
/// lives: everything that calls into the plugin holds a shared_ptr to it.
class LoadedPlugin {
 public:
  /// Loads the file at `path` (already content-addressed, see PluginStore) whose SHA-256 is
  /// `hash`. Throws PluginLoadError saying why a file is refused: not a shared library, no
  /// ipp manifest, another ABI version, duplicate or malformed task names, or a loader error.
  static std::shared_ptr<const LoadedPlugin> load(const std::filesystem::path& path,
                                                  std::string hash);

  /// Checks a file without loading it: an ELF shared library exporting an ipp manifest.
  /// Throws PluginLoadError saying what is wrong. Safe for processes that must not run
  /// plugin code (the controller). Messages name the file `shown_as` when given (the name
  /// the user knows it by, not the store's), else by its own file name.
  static void validate_file(const std::filesystem::path& path, std::string_view shown_as = {});

  LoadedPlugin(const LoadedPlugin&) = delete;
  LoadedPlugin& operator=(const LoadedPlugin&) = delete;
  ~LoadedPlugin();

  [[nodiscard]] const std::string& name() const noexcept { return name_; }
  [[nodiscard]] const std::string& version() const noexcept { return version_; }
  [[nodiscard]] const std::string& sdk_version() const noexcept { return sdk_version_; }
  [[nodiscard]] const std::string& hash() const noexcept { return hash_; }
  [[nodiscard]] const std::filesystem::path& path() const noexcept { return path_; }
  [[nodiscard]] const std::vector<TaskInfo>& tasks() const noexcept { return infos_; }
  /// The ABI entry of task `index` (same order as tasks()).
  [[nodiscard]] const ipp_task_v1& abi_task(std::size_t index) const noexcept {
    return manifest_->tasks[index];
  }
  /// What the calls of task `index` taught the Runtime so far: kept with the code they ran,
  /// so that a reloaded plugin is learnt afresh, and read without a lock or a lookup.
  [[nodiscard]] CallTimes& call_times(std::size_t index) const noexcept {
    return call_times_[index];
  }

 private:
  LoadedPlugin() = default;

  std::unique_ptr<boost::dll::shared_library> library_;
  const ipp_manifest_v1* manifest_ = nullptr;
  std::string name_, version_, sdk_version_, hash_;
  std::filesystem::path path_;
  std::vector<TaskInfo> infos_;
  mutable std::unique_ptr<CallTimes[]> call_times_;  // one per task
};

}  // namespace ipp
