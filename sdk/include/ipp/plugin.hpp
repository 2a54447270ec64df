#pragma once

/// The plugin SDK: include this, write ordinary functions, register each with IPP_TASK.
///
///     #include <ipp/plugin.hpp>
///
///     std::int64_t mul(std::int64_t a, std::int64_t b) { return a * b; }
///     double total(std::span<const double> xs) { return std::accumulate(xs.begin(), xs.end(),
///     0.0); }
///
///     IPP_TASK(mul)
///     IPP_TASK(total, "Sums an array; reads it in place, without copying.")
///
/// Build with `ipp_add_plugin(NAME SOURCES ...)` from `find_package(ipp)`. Parameter types:
/// bool, std::intN_t / std::uintN_t, float, double, std::string, std::string_view,
/// std::vector<T> of those, std::span<const T> of the numeric ones, ipp::Value, and
/// ipp::Context& (not passed by callers). Results: any of those but the views, void, or
/// std::tuple / std::pair (returned as a list). Exceptions a task throws come back to the
/// caller as errors naming the task; they never take the engine down.

#include "ipp/context.hpp"
#include "ipp/detail/task.hpp"
#include "ipp/value.hpp"

#define IPP_DETAIL_CAT2(a, b) a##b
#define IPP_DETAIL_CAT(a, b) IPP_DETAIL_CAT2(a, b)
#define IPP_DETAIL_TASK_1(fn) IPP_DETAIL_TASK_2(fn, "")
#define IPP_DETAIL_TASK_2(fn, doc)                                                                \
  namespace {                                                                                     \
  const ::ipp::detail::TaskRegistrar IPP_DETAIL_CAT(ipp_task_registrar_,                          \
                                                    fn){::ipp::detail::make_task<&fn>(#fn, doc)}; \
  }
#define IPP_DETAIL_PICK(_1, _2, name, ...) name

/// Registers the function `fn` as a task named after it, with an optional doc string.
/// May appear in several source files of one plugin; each task name once.
#define IPP_TASK(...) \
  IPP_DETAIL_PICK(__VA_ARGS__, IPP_DETAIL_TASK_2, IPP_DETAIL_TASK_1, unused)(__VA_ARGS__)

#define IPP_DETAIL_TASK_AS(name, fn, doc)                                          \
  namespace {                                                                      \
  const ::ipp::detail::TaskRegistrar IPP_DETAIL_CAT(ipp_task_registrar_as_, name){ \
      ::ipp::detail::make_task<&fn>(#name, doc)};                                  \
  }

/// Registers the function `fn` as a task called `name` (an identifier), with a doc string:
/// for tasks whose natural name is taken in C++ (`IPP_TASK_AS(getpid, getpid_task, "...")`).
#define IPP_TASK_AS(name, fn, doc) IPP_DETAIL_TASK_AS(name, fn, doc)
