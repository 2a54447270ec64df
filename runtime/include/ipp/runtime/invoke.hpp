#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>

#include "ipp/codec.hpp"
#include "ipp/error.hpp"
#include "ipp/runtime/namespace.hpp"
#include "ipp/runtime/task_registry.hpp"

namespace ipp {

class Executor;

/// What a task can reach while it runs.
struct InvokeContext {
  std::int64_t engine_id = -1;
  Namespace* ns = nullptr;                       ///< null: the task sees an empty namespace
  const std::atomic<bool>* cancelled = nullptr;  ///< null: never cancelled
  /// The most bytes a map's output may take (0: as much as the memory available allows).
  std::uint64_t max_map_output = 0;
};

using Clock = std::chrono::system_clock;

/// The outcome of one call or map block: a result payload or an error record, with times.
struct TaskOutcome {
  Payload result;
  std::optional<ErrorRecord> error;
  Clock::time_point started;
  Clock::time_point completed;
  /// What the task printed to stdout and stderr on its threads (see output::install), bounded.
  std::string out;
  std::string err;
  [[nodiscard]] bool ok() const noexcept { return !error.has_value(); }
};

/// Runs `task` once on the calling thread. `args` (a List of the arguments) is verified
/// first; a corrupt buffer gives an error outcome, never a crash. Never throws.
TaskOutcome invoke(const TaskHandle& task, const Payload& args, const InvokeContext& ctx) noexcept;

/// Runs `task` over every element of `sequences` (a List of equally long sequences: arrays,
/// lists or ranges, one per parameter), split into chunks run in parallel on `executor`'s
/// arena from the calling thread. The result is a typed array for numeric results, else a
/// list, in input order. A failing element fails the block with its index. Never throws.
TaskOutcome invoke_map(const TaskHandle& task, const Payload& sequences, const InvokeContext& ctx,
                       Executor& executor) noexcept;

}  // namespace ipp
