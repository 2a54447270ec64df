#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

#include "ipp/abi.h"
#include "ipp/value.hpp"

namespace ipp {

/// What a running task can see of its engine. Declare a parameter `ipp::Context&` anywhere in
/// a task's signature to receive it; callers do not pass it.
///
///     std::int64_t count_up(ipp::Context& ctx, std::int64_t n) {
///       for (std::int64_t i = 0; i < n; ++i)
///         if (ctx.cancelled()) return i;                    // stop early when asked
///       ctx.set("last", n);                                 // visible to later tasks
///       return n;
///     }
///
/// Valid only during the call that received it. Its methods are thread-safe.
class Context {
 public:
  explicit Context(const ipp_host_v1* host) noexcept : host_(host) {}

  /// Id of the engine running the task (-1 in a runtime that is not an engine).
  [[nodiscard]] std::int64_t engine_id() const noexcept { return host_->engine_id; }
  /// True once the task has been asked to stop; a long task should poll it and return.
  [[nodiscard]] bool cancelled() const noexcept { return host_->cancelled(host_->self) != 0; }

  /// The engine namespace's value for `name`, or nullopt.
  [[nodiscard]] std::optional<Value> get(std::string_view name) const;
  /// The value for `name`; throws ArgumentError naming it when it is not bound.
  [[nodiscard]] Value at(std::string_view name) const;
  /// Binds `name` to `value` in the engine's namespace.
  void set(std::string_view name, const Value& value);
  /// Unbinds `name`; returns whether it was bound.
  bool erase(std::string_view name);

 private:
  const ipp_host_v1* host_;
};

}  // namespace ipp
