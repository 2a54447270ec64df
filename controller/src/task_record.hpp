#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipp/buffer.hpp"
#include "ipp/error.hpp"
#include "ipp/value.hpp"

namespace ipp::hub {

/// Everything the hub knows about one task.
struct TaskRecord {
  std::string msg_id;
  std::string client;  ///< the submitting client's session
  std::string queue;   ///< "direct" or "balanced"
  std::string kind;    ///< "apply", "map", "execute", "push", "pull", "clear"
  std::string task;    ///< the task as named by the client
  std::string plugin;  ///< the plugin that ran it, once known
  std::string plugin_hash;
  std::int64_t target = -1;  ///< direct: the engine asked for
  std::int64_t engine = -1;  ///< the engine it was given to
  std::string bind;          ///< apply_to / map_to: the name the result was bound to
  std::string args;          ///< the request's payload, serialised (see pack_parts); empty when it
                             ///< was larger than the hub keeps
  std::int64_t submitted = 0, started = 0, completed = 0, received = 0;  ///< µs since epoch
  std::string status = "pending";  ///< pending, running, ok, error, aborted, cancelled, engine_died
  std::string result;              ///< the reply's payload, serialised
  std::optional<ErrorRecord> error;
  std::string resubmitted_from;
  std::int64_t args_size = 0;    ///< bytes of the request's payload (kept in `args` or not)
  std::int64_t result_size = 0;  ///< bytes of the reply's payload
  /// Instead of `args` / `result` when set: the payload's parts as the hub received them,
  /// which put() and update() pack where they keep them (a large payload goes to its file
  /// with no packed copy in memory first). Records read back have `args` / `result`.
  std::vector<Buffer> args_parts, result_parts;
};

/// A record as a Value map (what clients receive), with the payload fields left out unless
/// `with_payloads`.
Value to_value(const TaskRecord& record, bool with_payloads = false);

/// Serialises payload parts (a root and side frames) into one blob and back.
std::string pack_parts(const std::vector<std::string_view>& parts);
std::string pack_parts(const std::vector<Buffer>& parts);
/// The bytes pack_parts() makes of `parts`.
std::int64_t packed_size(const std::vector<Buffer>& parts);
std::vector<std::string> unpack_parts(std::string_view blob);

/// The 8-byte little-endian length that comes before each part in pack_parts()'s blob.
std::array<char, 8> part_length(std::uint64_t n);

/// An error record as the JSON text of the task table's `error` column (empty for none).
std::string error_json(const std::optional<ErrorRecord>& e);
/// The error record of an `error` column's text; nullopt when it is empty or malformed.
std::optional<ErrorRecord> error_from_json(std::string_view text);

}  // namespace ipp::hub
