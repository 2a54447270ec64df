#include "random.hpp"

#include <pthread.h>
#include <sodium.h>

#include <atomic>
#include <cstring>

namespace ipp::net {

namespace {

std::atomic<unsigned> fork_generation{0};

struct RandomPool {
  unsigned char bytes[4096];
  std::size_t used = sizeof bytes;
  unsigned generation = 0;
};

}  // namespace

void random_bytes(unsigned char* out, std::size_t n) {
  static const int init = [] {
    pthread_atfork(nullptr, nullptr, [] { fork_generation.fetch_add(1); });
    return sodium_init();
  }();
  (void)init;
  thread_local RandomPool pool;
  if (n > sizeof pool.bytes / 8) {
    randombytes_buf(out, n);
    return;
  }
  const unsigned g = fork_generation.load(std::memory_order_relaxed);
  if (pool.used + n > sizeof pool.bytes || pool.generation != g) {
    randombytes_buf(pool.bytes, sizeof pool.bytes);
    pool.used = 0;
    pool.generation = g;
  }
  std::memcpy(out, pool.bytes + pool.used, n);
  sodium_memzero(pool.bytes + pool.used, n);
  pool.used += n;
}

}  // namespace ipp::net
