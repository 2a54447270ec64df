#include "sequences.hpp"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "ipp/error.hpp"

namespace ipp::detail {

Value slice(const Value& seq, std::uint64_t begin, std::uint64_t end) {
  switch (seq.kind()) {
    case Value::Kind::range: {
      const Range& r = seq.as_range();
      return Value(
          Range{r[begin], r[begin] + static_cast<std::int64_t>(end - begin) * r.step, r.step});
    }
    case Value::Kind::array:
      return Value(seq.as_array().slice(begin, end));
    case Value::Kind::list: {
      const auto& items = seq.as_list();
      return Value(Value::List(items.begin() + static_cast<std::ptrdiff_t>(begin),
                               items.begin() + static_cast<std::ptrdiff_t>(end)));
    }
    default:
      throw ArgumentError(
          fmt::format("map needs sequences (lists, arrays or ranges), got {}", seq.type_name()));
  }
}

bool is_sequence(const Value& v) noexcept {
  return v.kind() == Value::Kind::list || v.kind() == Value::Kind::array ||
         v.kind() == Value::Kind::range;
}

std::optional<std::uint64_t> common_length(const Value::List& sequences) {
  if (sequences.empty()) throw ArgumentError("map needs at least one sequence");
  const bool any = std::any_of(sequences.begin(), sequences.end(), [](const Value& s) {
    return is_sequence(s) || s.kind() == Value::Kind::ref;
  });
  if (!any) {
    throw ArgumentError(
        "map: no argument is a sequence (a list, an array or a range) to map over; single "
        "values are repeated for every element of the sequences");
  }
  std::optional<std::uint64_t> n;
  for (std::size_t i = 0; i < sequences.size(); ++i) {
    const Value& s = sequences[i];
    if (!is_sequence(s)) continue;  // a reference, or a single value broadcast
    const auto len = s.size();
    if (!n)
      n = len;
    else if (len != *n) {
      throw ArgumentError(fmt::format("map: sequences differ in length ({} and {})", *n, len));
    }
  }
  return n;
}

Value block_of(const Value& argument, std::uint64_t begin, std::uint64_t end) {
  if (argument.kind() == Value::Kind::ref) return argument;
  if (is_sequence(argument)) return slice(argument, begin, end);
  const auto n = static_cast<std::size_t>(end - begin);
  if (argument.kind() == Value::Kind::integer)
    return Value(std::vector<std::int64_t>(n, argument.as_int()));
  if (argument.kind() == Value::Kind::floating)
    return Value(std::vector<double>(n, argument.as_float()));
  return Value(Value::List(n, argument));
}

std::pair<std::uint64_t, std::uint64_t> block(std::uint64_t n, std::uint64_t parts,
                                              std::uint64_t i) {
  const std::uint64_t begin = i * (n / parts) + std::min(i, n % parts);
  return {begin, begin + n / parts + (i < n % parts ? 1 : 0)};
}

Value concatenate(std::vector<Value> blocks) {
  const bool ranges =
      !blocks.empty() && std::all_of(blocks.begin(), blocks.end(),
                                     [](const Value& b) { return b.kind() == Value::Kind::range; });
  if (ranges) {
    Range joined = blocks[0].as_range();
    bool contiguous = true;
    for (std::size_t i = 1; i < blocks.size() && contiguous; ++i) {
      const Range& r = blocks[i].as_range();
      if (r.size() == 0) continue;
      const auto next = joined[joined.size()];  // the element after joined's last
      contiguous = r.start == next && r.step == joined.step;
      if (contiguous) joined.stop = r.start + static_cast<std::int64_t>(r.size()) * r.step;
    }
    if (contiguous) return Value(joined);
  }
  bool arrays = !blocks.empty();
  for (const auto& b : blocks) {
    arrays = arrays && b.kind() == Value::Kind::array &&
             b.as_array().dtype() == blocks[0].as_array().dtype() &&
             b.as_array().shape().size() == 1;
  }
  if (arrays) {
    std::size_t bytes = 0;
    for (const auto& b : blocks)
      bytes += b.as_array().buffer().size();
    std::byte* out = nullptr;
    Buffer buffer = Buffer::allocate(bytes, &out);
    std::uint64_t n = 0;
    for (const auto& b : blocks) {
      const auto& a = b.as_array();
      if (a.buffer().size() != 0) std::memcpy(out, a.buffer().data(), a.buffer().size());
      out += a.buffer().size();
      n += a.size();
    }
    return Value(Array(blocks[0].as_array().dtype(), {n}, std::move(buffer)));
  }
  Value::List all;
  for (auto& b : blocks) {
    if (b.kind() == Value::Kind::list) {
      for (auto& v : b.as_list())
        all.push_back(std::move(v));
    } else if (b.kind() == Value::Kind::array && b.as_array().shape().size() == 1) {
      const Array& a = b.as_array();
      visit_dtype(a.dtype(), [&](auto tag) {
        using S = decltype(tag);
        for (std::uint64_t i = 0; i < a.size(); ++i)
          all.emplace_back(load<S>(a.buffer().data(), i));
      });
    } else if (b.kind() == Value::Kind::range) {
      const Range& r = b.as_range();
      for (std::uint64_t i = 0; i < r.size(); ++i)
        all.emplace_back(r[i]);
    } else {
      all.push_back(std::move(b));
    }
  }
  return Value(std::move(all));
}

}  // namespace ipp::detail
