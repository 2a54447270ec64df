#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <string_view>

namespace ipp {

/// What one task printed: its standard output and standard error, each kept up to a bound
/// (kLimit bytes; past it a note says how much was dropped). Thread-safe: the blocks of a map
/// run on several threads and print into the same TaskOutput.
class TaskOutput {
 public:
  static constexpr std::size_t kLimit = 64 * 1024;

  /// Appends to stream 1 (stdout) or 2 (stderr).
  void write(int stream, std::string_view text);
  /// The text of stream 1 or 2, with the note when some was dropped; empties it.
  [[nodiscard]] std::string take(int stream);

 private:
  struct Stream {
    std::string text;
    std::size_t dropped = 0;
  };
  std::mutex mutex_;
  Stream streams_[2];
};

/// Capture of what tasks print, by thread: while a CaptureScope is alive on a thread, what that
/// thread writes to stdout or stderr (printf, std::cout, std::cerr, puts, ...) goes to the
/// scope's TaskOutput; anything else goes on to the process's standard output and error (an
/// engine's log) as before. Writes straight to the file descriptors (write(1, ...)) are not
/// seen.
namespace output {

/// Makes `stdout` and `stderr` unbuffered streams that route by thread, and std::cout,
/// std::clog and std::cerr write through them. Once per process (an engine at start); later
/// calls do nothing. Without it, scopes capture nothing.
void install();

/// The TaskOutput of the calling thread's scope, or null.
[[nodiscard]] TaskOutput* current() noexcept;

/// Routes the calling thread's output to `into` for its life (null: to the process's own
/// streams), restoring what was routed before.
class CaptureScope {
 public:
  explicit CaptureScope(TaskOutput* into) noexcept;
  ~CaptureScope();
  CaptureScope(const CaptureScope&) = delete;
  CaptureScope& operator=(const CaptureScope&) = delete;

 private:
  TaskOutput* previous_;
};

}  // namespace output

}  // namespace ipp
