// The load-balanced scheduler's placement: which free engine takes which ready task, by
// scheme, within each engine's capacity. The rest of the Balancer is in balancer.cpp.

#include <algorithm>
#include <climits>
#include <cmath>
#include <iterator>

#include "balancer.hpp"

namespace ipp::sched {

// ---- placement ------------------------------------------------------------------------------

std::int64_t Balancer::pick(const std::optional<std::set<std::int64_t>>& allowed, const Task& t,
                            std::int64_t estimate) {
  const std::set<std::int64_t>* tried = t.extra ? &t.extra->tried : nullptr;
  auto was_tried = [&](std::int64_t id) { return tried != nullptr && tried->count(id) != 0; };
  // Most tasks have one or two candidate engines: no allocation for the common case.
  std::pair<std::int64_t, const Engine*> local[8];
  std::vector<std::pair<std::int64_t, const Engine*>> spill;
  std::size_t n = 0;
  auto add = [&](std::int64_t id, const Engine* e) {
    if (n < std::size(local))
      local[n] = {id, e};
    else
      spill.emplace_back(id, e);
    ++n;
  };
  auto at = [&](std::size_t i) -> const std::pair<std::int64_t, const Engine*>& {
    return i < std::size(local) ? local[i] : spill[i - std::size(local)];
  };
  // Only engines that have the task, when some are known to (a plugin that failed to load on
  // the others, or was never pushed to them).
  const std::set<std::int64_t>* providers = providers_of(t);
  auto lacks = [&](std::int64_t id) { return providers != nullptr && providers->count(id) == 0; };
  bool untried_exists = false;  // an allowed engine it has not failed on, free or not
  for (const auto& [id, e] : engines_) {
    if (e.draining || (allowed && allowed->count(id) == 0) || lacks(id)) continue;
    const bool was = was_tried(id);
    if (!was) untried_exists = true;
    if (!was && can_take(e, estimate)) add(id, &e);
  }
  if (n == 0) {
    // A retry goes to a different engine while one exists; when it has been tried
    // everywhere, any engine will do.
    if (untried_exists || tried == nullptr || tried->empty()) return -1;
    for (const auto& [id, e] : engines_) {
      if ((!allowed || allowed->count(id) != 0) && !lacks(id) && can_take(e, estimate)) add(id, &e);
    }
    if (n == 0) return -1;
  }
  auto ratio = [](const Engine& e) { return static_cast<double>(e.load) / e.slots; };
  auto less_recent = [](const auto& a, const auto& b) {
    return a.second->last_used < b.second->last_used;
  };
  auto random_index = [&](std::size_t k) {
    return std::uniform_int_distribution<std::size_t>(0, k - 1)(rng_);
  };
  auto best = [&](auto&& better) {
    std::size_t b = 0;
    for (std::size_t i = 1; i < n; ++i) {
      if (better(at(i), at(b))) b = i;
    }
    return at(b).first;
  };
  switch (options_.scheme) {
    case Scheme::leastload:
      return best([&](const auto& a, const auto& b) {
        const double ra = ratio(*a.second), rb = ratio(*b.second);
        return ra < rb || (ra == rb && less_recent(a, b));
      });
    case Scheme::lru:
      return best(less_recent);
    case Scheme::plainrandom:
      return at(random_index(n)).first;
    case Scheme::twobin: {
      const auto& a = at(random_index(n));
      const auto& b = at(random_index(n));
      return less_recent(b, a) ? b.first : a.first;
    }
    case Scheme::weighted: {
      std::vector<double> weights;
      weights.reserve(n);
      for (std::size_t i = 0; i < n; ++i)
        weights.push_back(1.0 / (1e-6 + ratio(*at(i).second)));
      std::discrete_distribution<std::size_t> draw(weights.begin(), weights.end());
      const auto& a = at(draw(rng_));
      const auto& b = at(draw(rng_));
      return ratio(*b.second) < ratio(*a.second) ? b.first : a.first;
    }
  }
  return at(0).first;
}

void Balancer::place(TaskId msg_id, Task& t, std::int64_t engine, std::int64_t estimate) {
  Engine& e = engines_.at(engine);
  ++e.load;
  if (estimate >= 0)
    e.short_work_us += estimate;
  else
    ++e.long_held;
  e.last_used = ++clock_;
  e.tasks.insert(msg_id);
  t.state = State::running;
  t.engine = static_cast<std::int32_t>(engine);
  t.charged_us = static_cast<std::int32_t>(estimate);
  if (t.extra && t.extra->deadline) {
    deadlines_.erase({*t.extra->deadline, msg_id});
    t.extra->deadline.reset();
  }
  ++running_count_;
  --ready_count_;
  dispatches_.push_back({msg_id, engine});
}

void Balancer::schedule() {
  auto any_room = [&] {
    return std::any_of(engines_.begin(), engines_.end(),
                       [&](const auto& kv) { return may_take_any(kv.second); });
  };
  std::vector<Ready> skipped;  // restricted to engines that are busy now: they stay queued
  std::vector<std::pair<TaskId, std::string>> impossible_ids;  // msg_id, why
  while (!ready_.empty() && any_room()) {
    std::pop_heap(ready_.begin(), ready_.end());
    const Ready top = ready_.back();
    ready_.pop_back();
    auto it = tasks_.find(top.msg_id);
    if (it == tasks_.end() || it->second.state != State::ready || it->second.seq != top.seq)
      continue;  // aborted, failed or placed since it was queued
    Task& t = it->second;
    std::string why;
    bool impossible = false;
    const auto where = allowed(t, &why, &impossible);
    if (impossible) {
      impossible_ids.emplace_back(top.msg_id, std::move(why));
      skipped.push_back(top);
      continue;
    }
    const std::int64_t estimate = estimate_us(t);
    const std::int64_t engine = pick(where, t, estimate);
    if (engine < 0) {
      skipped.push_back(top);
      // A task any engine may run waits for a slot: nothing behind it goes first, or a
      // stream of short tasks could keep it waiting for ever. Tasks restricted to some
      // engines (targets, follow, engines they failed on) do not hold the others back.
      const bool restricted =
          where.has_value() || (t.extra && !t.extra->tried.empty()) || providers_of(t) != nullptr;
      if (!restricted) break;
      continue;
    }
    place(top.msg_id, t, engine, estimate);
  }
  for (const auto& r : skipped) {
    ready_.push_back(r);
    std::push_heap(ready_.begin(), ready_.end());
  }
  // Entries of tasks that left the queue otherwise are dropped once they outnumber the rest.
  if (ready_.size() > 2 * ready_count_ + 1024) {
    std::erase_if(ready_, [&](const Ready& r) {
      auto it = tasks_.find(r.msg_id);
      return it == tasks_.end() || it->second.state != State::ready || it->second.seq != r.seq;
    });
    std::make_heap(ready_.begin(), ready_.end());
  }
  for (const auto& [msg_id, why] : impossible_ids)
    fail_impossible(msg_id, why);
  settle();
}

}  // namespace ipp::sched
