#include "ipp/runtime/output.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <streambuf>

#include <fmt/format.h>

namespace ipp {

void TaskOutput::write(int stream, std::string_view text) {
  std::lock_guard lock(mutex_);
  Stream& s = streams_[stream == 2 ? 1 : 0];
  const std::size_t room = s.text.size() < kLimit ? kLimit - s.text.size() : 0;
  const std::size_t kept = std::min(room, text.size());
  s.text.append(text.substr(0, kept));
  s.dropped += text.size() - kept;
}

std::string TaskOutput::take(int stream) {
  std::lock_guard lock(mutex_);
  Stream& s = streams_[stream == 2 ? 1 : 0];
  std::string out = std::move(s.text);
  if (s.dropped != 0) {
    if (!out.empty() && out.back() != '\n') out += '\n';
    out += fmt::format("[... {} more bytes of output were not kept]\n", s.dropped);
  }
  s = Stream{};
  return out;
}

namespace output {

namespace {

thread_local TaskOutput* t_current = nullptr;

/// Writes `text` to stream `fd` (1 or 2): to the calling thread's task, else to the file.
void route(int fd, const char* data, std::size_t size) {
  if (TaskOutput* into = t_current) {
    into->write(fd, std::string_view(data, size));
    return;
  }
  while (size > 0) {
    const ssize_t n = ::write(fd, data, size);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere to write: dropped, as a closed stdout would
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

ssize_t cookie_write(void* cookie, const char* data, std::size_t size) {
  route(static_cast<int>(reinterpret_cast<std::intptr_t>(cookie)), data, size);
  return static_cast<ssize_t>(size);
}

/// A C stream over route(): unbuffered, so that each write happens on the thread that made it.
FILE* routed_stream(int fd) {
  cookie_io_functions_t io{};
  io.write = cookie_write;
  FILE* f = ::fopencookie(reinterpret_cast<void*>(static_cast<std::intptr_t>(fd)), "w", io);
  if (f != nullptr) std::setvbuf(f, nullptr, _IONBF, 0);
  return f;
}

/// std::cout's and std::cerr's buffer: each write goes to route() on its own thread.
class RoutedBuf : public std::streambuf {
 public:
  explicit RoutedBuf(int fd) : fd_(fd) {}

 protected:
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    const char ch = traits_type::to_char_type(c);
    route(fd_, &ch, 1);
    return c;
  }
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    route(fd_, s, static_cast<std::size_t>(n));
    return n;
  }

 private:
  int fd_;
};

}  // namespace

void install() {
  static std::once_flag once;
  std::call_once(once, [] {
    std::fflush(stdout);
    std::fflush(stderr);
    if (FILE* out = routed_stream(1)) stdout = out;
    if (FILE* err = routed_stream(2)) stderr = err;
    // Never destroyed: the standard streams flush through them at exit, after function-local
    // statics are gone.
    auto* out_buf = new RoutedBuf(1);
    auto* err_buf = new RoutedBuf(2);
    std::cout.flush();
    std::cout.rdbuf(out_buf);
    std::cerr.rdbuf(err_buf);
    std::clog.rdbuf(err_buf);
  });
}

TaskOutput* current() noexcept {
  return t_current;
}

CaptureScope::CaptureScope(TaskOutput* into) noexcept : previous_(t_current) {
  t_current = into;
}

CaptureScope::~CaptureScope() {
  t_current = previous_;
}

}  // namespace output

}  // namespace ipp
