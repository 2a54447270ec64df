#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipp/buffer.hpp"
#include "ipp/error.hpp"
#include "ipp/fb/protocol_generated.h"
#include "ipp/value.hpp"

namespace ipp::net {

using MsgType = fb::MsgType;

/// A dependency of a load-balanced task (schema: Dependency).
struct Dependency {
  std::vector<std::string> ids{};
  bool all = true;
  bool success = true;
  bool failure = false;
  [[nodiscard]] bool empty() const noexcept { return ids.empty(); }
};

/// Scheduling flags of a task (schema: TaskFlags).
struct TaskFlags {
  std::int32_t retries = 0;
  Dependency after{};
  Dependency follow{};
  std::vector<std::int64_t> targets{};
  std::int32_t priority = 0;
  std::int64_t time_limit_ms = 0;
  [[nodiscard]] bool is_default() const noexcept {
    return retries == 0 && after.empty() && follow.empty() && targets.empty() && priority == 0 &&
           time_limit_ms == 0;
  }
};

/// The header of a message, decoded. See schema/protocol.fbs for what each field means.
struct Header {
  MsgType type = MsgType::QueryRequest;
  std::string msg_id;
  std::string parent_id;
  std::string session;
  std::string task;
  std::int64_t target = -1;
  std::int64_t engine = -1;
  std::int64_t submitted = 0;
  std::int64_t started = 0;
  std::int64_t completed = 0;
  std::optional<ErrorRecord> error;
  std::int32_t threads = 0;
  Value info;
  std::string bind;
  std::int64_t timeout_ms = 0;
  TaskFlags flags;
};

/// The longest task name a request may carry: a plugin's task names are identifiers, far
/// shorter. Clients refuse longer ones before sending, schedulers answer them with an error.
inline constexpr std::size_t kMaxTaskNameBytes = 4096;

/// The longest error message a header carries; a longer one is cut, saying how much was.
inline constexpr std::size_t kMaxErrorMessageBytes = 64 * 1024;

/// The name `task` as errors and logs show it: at most 64 bytes of it.
[[nodiscard]] std::string shown_task_name(std::string_view task);

/// The largest header a peer accepts. Bulk data goes in a message's payload, never here.
inline constexpr std::size_t kMaxHeaderBytes = std::size_t{1} << 24;

/// Serialises a header into its own buffer. Throws ProtocolError when it would be larger
/// than kMaxHeaderBytes (its receiver would reject it).
[[nodiscard]] Buffer encode_header(const Header& header);
/// Verifies and decodes a received header. Throws ProtocolError.
[[nodiscard]] Header decode_header(const Buffer& buffer);

/// A fresh message id: 32 lowercase hex digits, the first 12 the milliseconds since the Unix
/// epoch and the other 20 random. Ids made later sort after earlier ones, so indexes of ids
/// (the hub's database) grow at one end instead of being written all over.
[[nodiscard]] std::string new_id();

/// A message id as the 16 bytes its 32 hex digits stand for: what schedulers key their tables
/// by, so that a queued task's entries hold no string of their own.
struct TaskId {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  friend bool operator==(TaskId, TaskId) = default;
  friend auto operator<=>(TaskId, TaskId) = default;
  /// The id of `text` when it is 32 lowercase hex digits (as new_id() makes them), else
  /// nullopt: every id maps to one text and back.
  [[nodiscard]] static std::optional<TaskId> parse(std::string_view text) noexcept;
  /// The 32 lowercase hex digits.
  [[nodiscard]] std::string str() const;
};
/// The last 16 digits of an id (`lo`) are random: they hash well as they are.
struct TaskIdHash {
  std::size_t operator()(TaskId id) const noexcept {
    return static_cast<std::size_t>(id.lo ^ (id.hi >> 7));
  }
};
/// Microseconds since the Unix epoch.
[[nodiscard]] std::int64_t now_us();

/// `"ApplyRequest"`, ... for logs and errors.
[[nodiscard]] const char* to_string(MsgType type) noexcept;
/// Whether `type` is a task a client submits (apply, map, execute, namespace).
[[nodiscard]] bool is_task_request(MsgType type) noexcept;

}  // namespace ipp::net
