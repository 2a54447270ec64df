#include "job_table.hpp"

namespace ipp::engine {

void JobTable::add(std::shared_ptr<Job> job) {
  const std::string id = job->request.msg_id;
  if (job->time_limit_ms > 0) limited_.insert(id);
  jobs_[id] = std::move(job);
}

void JobTable::forget(const std::vector<std::string>& msg_ids) {
  for (const auto& id : msg_ids)
    jobs_.erase(id);
}

void JobTable::control(const std::vector<std::string>& msg_ids, bool cancel) {
  for (const auto& id : msg_ids) {
    auto it = jobs_.find(id);
    if (it == jobs_.end()) continue;
    Job& job = *it->second;
    if (!cancel && job.control->started_us.load() != 0) continue;  // abort: too late
    int expected = Job::none;
    job.verdict.compare_exchange_strong(expected, cancel ? Job::cancelled : Job::aborted);
    job.control->cancelled.store(true);
  }
}

std::vector<std::shared_ptr<Job>> JobTable::expire(std::int64_t now) {
  std::vector<std::shared_ptr<Job>> out;
  for (auto it = limited_.begin(); it != limited_.end();) {
    auto j = jobs_.find(*it);
    if (j == jobs_.end()) {
      it = limited_.erase(it);
      continue;
    }
    Job& job = *j->second;
    const std::int64_t started = job.control->started_us.load();
    if (started == 0 || now - started < job.time_limit_ms * 1000) {
      ++it;
      continue;
    }
    it = limited_.erase(it);
    if (job.replied.exchange(true)) continue;  // it had finished meanwhile
    job.verdict.store(Job::timed_out);
    job.control->cancelled.store(true);
    overdue_[job.request.msg_id] = now + grace_us_;
    out.push_back(j->second);
  }
  return out;
}

std::shared_ptr<Job> JobTable::past_grace(std::int64_t now) {
  for (auto it = overdue_.begin(); it != overdue_.end();) {
    auto j = jobs_.find(it->first);
    if (j == jobs_.end()) {  // it returned at last
      it = overdue_.erase(it);
      continue;
    }
    if (now >= it->second) return j->second;
    ++it;
  }
  return nullptr;
}

std::size_t JobTable::drop_all() {
  std::size_t n = 0;
  for (auto& [id, job] : jobs_) {
    if (job->replied.exchange(true)) continue;
    job->verdict.store(Job::cancelled);
    job->control->cancelled.store(true);
    ++n;
  }
  return n;
}

}  // namespace ipp::engine
