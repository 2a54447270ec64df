#pragma once

// The sequence algebra of views' maps and scatters: splitting sequences into blocks without
// copying them, and joining gathered blocks back.

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "ipp/value.hpp"

namespace ipp::detail {

/// Elements [begin, end) of a sequence, without materialising ranges or copying arrays.
/// Throws ArgumentError for a value that is not a list, an array or a range.
Value slice(const Value& seq, std::uint64_t begin, std::uint64_t end);

/// Whether `v` is a sequence a map splits (list, array, range).
bool is_sequence(const Value& v) noexcept;

/// The length shared by the sequences; references (resolved on the engines) and single
/// values (broadcast to every element, see broadcast()) do not count. Empty when every
/// argument is a reference. Throws ArgumentError when there are no arguments, when none is a
/// sequence or a reference, or when lengths differ.
std::optional<std::uint64_t> common_length(const Value::List& sequences);

/// A map's argument for elements [begin, end): the slice of a sequence, a reference as it is,
/// or a single value repeated (as numpy broadcasts a scalar against an array): an int64 or
/// float64 array for a number, a list for anything else.
Value block_of(const Value& argument, std::uint64_t begin, std::uint64_t end);

/// Block i of n elements split over `parts` contiguous blocks, the first n % parts longer.
std::pair<std::uint64_t, std::uint64_t> block(std::uint64_t n, std::uint64_t parts,
                                              std::uint64_t i);

/// Joins gathered blocks: arrays of one dtype into one array, contiguous ranges into one
/// range, anything else into a list (a block that is not a sequence is one element).
Value concatenate(std::vector<Value> blocks);

}  // namespace ipp::detail
