#pragma once

#include <cstddef>

namespace ipp::net {

/// Fills `out` with `n` random bytes from the kernel's generator, taken 4 KiB at a time into a
/// per-thread pool: one system call per few hundred ids or nonces instead of one each. Bytes
/// are handed out once (and wiped from the pool); a forked child refills before drawing, so
/// parent and child never share bytes. For keys, call randombytes_buf directly.
void random_bytes(unsigned char* out, std::size_t n);

}  // namespace ipp::net
