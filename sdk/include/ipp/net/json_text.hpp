#pragma once

#include <string>

namespace ipp {

/// `j` as JSON text. Strings may hold any bytes (task names, error messages, values from
/// peers): bytes that are not UTF-8 become U+FFFD instead of throwing, so nothing a peer sends
/// can make writing a record or printing a result fail.
template <typename Json>
std::string json_text(const Json& j, int indent = -1) {
  return j.dump(indent, ' ', false, Json::error_handler_t::replace);
}

}  // namespace ipp
