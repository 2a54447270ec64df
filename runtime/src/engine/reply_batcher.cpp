#include "reply_batcher.hpp"

#include <algorithm>
#include <span>
#include <tuple>

#include <spdlog/spdlog.h>

#include "ipp/net/shm.hpp"

namespace ipp::engine {

ReplyBatcher::ReplyBatcher(std::array<zmq::socket_t*, 2> sockets, const net::Signer& signer,
                           net::SharedParts to_controller, std::int64_t engine,
                           std::function<std::size_t()> queued)
    : sockets_(sockets),
      signer_(signer),
      to_controller_(to_controller),
      engine_(engine),
      queued_(std::move(queued)) {}

void ReplyBatcher::post(int channel, std::optional<net::Envelope> reply, std::string finished) {
  std::unique_lock lock(mutex_);
  finished_.push_back(std::move(finished));
  if (reply) outgoing_.push_back({channel, std::move(*reply)});
  // Held for the tasks queued behind it, unless the loop that would send it sleeps.
  if (!loop_sleeps_ && outgoing_.size() < kMaxBatch && queued_() > 0) return;
  send_outgoing(lock);
}

std::chrono::milliseconds ReplyBatcher::before_wait(std::chrono::milliseconds wait) {
  std::unique_lock lock(mutex_);
  send_outgoing(lock);
  if (queued_() > 0) wait = kHoldAtMost;
  loop_sleeps_ = wait > kHoldAtMost;
  return wait;
}

void ReplyBatcher::after_wait() {
  std::lock_guard lock(mutex_);
  loop_sleeps_ = false;
}

std::vector<std::string> ReplyBatcher::take_finished() {
  std::vector<std::string> out;
  std::lock_guard lock(mutex_);
  out.swap(finished_);
  return out;
}

std::size_t ReplyBatcher::resend_kept() {
  std::unique_lock lock(mutex_);
  const std::size_t again = sent_.size();
  for (auto& e : sent_)
    outgoing_.push_back({e.channel, e.message.unpack()});
  sent_.clear();
  sent_bytes_ = 0;
  send_outgoing(lock);
  return again;
}

std::pair<std::size_t, std::size_t> ReplyBatcher::kept() const {
  std::lock_guard lock(mutex_);
  return {sent_.size(), sent_bytes_};
}

void ReplyBatcher::send_outgoing(std::unique_lock<std::mutex>& lock) {
  if (sending_ || outgoing_.empty()) return;
  sending_ = true;
  std::deque<Outgoing> batch;
  std::vector<net::Envelope> replies[2];
  while (!outgoing_.empty()) {
    batch.swap(outgoing_);
    lock.unlock();
    // Replies finished together go to their scheduler as one batch per channel.
    for (auto& o : batch)
      replies[o.channel].push_back(std::move(o.envelope));
    batch.clear();
    for (int c = 0; c < 2; ++c) {
      for (std::size_t from = 0; from < replies[c].size(); from += kMaxBatch) {
        const std::size_t n = std::min(kMaxBatch, replies[c].size() - from);
        try {
          net::send_batch(*sockets_[c], signer_, {},
                          std::span<const net::Envelope>(replies[c]).subspan(from, n), false,
                          to_controller_);
        } catch (const std::exception& e) {
          spdlog::error("engine {}: {} results not sent: {}", engine_, n, e.what());
        }
      }
    }
    // What is kept for a restarted controller is packed first, outside the lock.
    std::vector<std::tuple<int, net::PackedMessage, std::size_t>> keep;
    for (int c = 0; c < 2; ++c) {
      for (const auto& env : replies[c]) {
        std::size_t bytes = 0;
        for (const auto& p : env.parts)
          bytes += p.size();
        if (bytes < net::SharedMemory::kThreshold)
          keep.emplace_back(c, net::PackedMessage(env), bytes);
      }
      replies[c].clear();
    }
    const auto now = std::chrono::steady_clock::now();
    lock.lock();
    for (auto& [c, message, bytes] : keep)
      keep_sent(c, std::move(message), bytes, now);
  }
  sending_ = false;
}

void ReplyBatcher::keep_sent(int channel, net::PackedMessage&& message, std::size_t bytes,
                             std::chrono::steady_clock::time_point now) {
  sent_bytes_ += bytes;
  sent_.push_back({now, channel, std::move(message), bytes});
  (void)drop_kept(now);
}

std::size_t ReplyBatcher::drop_kept(std::chrono::steady_clock::time_point now) {
  std::size_t dropped = 0;
  while (!sent_.empty() && (now - sent_.front().at > kKeepSent || sent_bytes_ > kKeepSentBytes)) {
    sent_bytes_ -= sent_.front().bytes;
    sent_.pop_front();
    ++dropped;
  }
  if (dropped > 0 && sent_.empty()) decltype(sent_)().swap(sent_);  // a deque keeps its blocks
  return dropped;
}

std::size_t ReplyBatcher::expire_kept(std::chrono::steady_clock::time_point now) {
  std::lock_guard lock(mutex_);
  return drop_kept(now);
}

}  // namespace ipp::engine
