#pragma once

#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ipp/runtime/plugin_loader.hpp"

namespace ipp {

/// A resolved task. The plugin's code stays loaded for as long as any handle to it lives, so
/// a call in flight finishes on the code it started with even after a reload.
struct TaskHandle {
  std::shared_ptr<const LoadedPlugin> plugin;
  std::size_t index = 0;

  [[nodiscard]] const ipp_task_v1& abi() const noexcept { return plugin->abi_task(index); }
  [[nodiscard]] const TaskInfo& info() const noexcept { return plugin->tasks()[index]; }
};

/// The tasks callable in this process, by `plugin.task` and by bare `task` when unique.
/// Thread-safe: lookups take a shared lock, loads an exclusive one.
class TaskRegistry {
 public:
  /// Registers `plugin`'s tasks. A plugin of the same name is replaced for new calls
  /// (calls already running keep the old one). Returns the plugin replaced, if any.
  std::shared_ptr<const LoadedPlugin> add(std::shared_ptr<const LoadedPlugin> plugin);

  /// Unregisters the plugin named `name` for new calls (calls already running keep it).
  /// Returns it, or null when none has that name.
  std::shared_ptr<const LoadedPlugin> remove(std::string_view name);

  /// Finds `plugin.task` or a bare `task`. Throws TaskNotFound, or AmbiguousTask listing the
  /// qualified candidates when a bare name is defined by several plugins.
  [[nodiscard]] TaskHandle resolve(std::string_view name) const;

  /// The plugin currently registered under `name`, or null.
  [[nodiscard]] std::shared_ptr<const LoadedPlugin> plugin(std::string_view name) const;
  /// Every registered plugin, by name.
  [[nodiscard]] std::vector<std::shared_ptr<const LoadedPlugin>> plugins() const;

 private:
  void reindex();  // holds the exclusive lock

  mutable std::shared_mutex mutex_;
  std::map<std::string, std::shared_ptr<const LoadedPlugin>, std::less<>> plugins_;
  // bare task name -> (plugin name, task index) for every plugin that defines it
  std::unordered_map<std::string, std::vector<std::pair<std::string, std::size_t>>> bare_;
};

}  // namespace ipp
