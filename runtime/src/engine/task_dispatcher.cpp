#include "task_dispatcher.hpp"

#include <cstdlib>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include "ipp/codec.hpp"
#include "ipp/net/engine_exit.hpp"
#include "ipp/net/message.hpp"
#include "ipp/runtime/output.hpp"

namespace ipp::engine {

namespace {

net::Header reply_of(const Job& job, std::int64_t engine) {
  net::Header r;
  r.type = net::MsgType::TaskReply;
  r.msg_id = net::new_id();
  r.parent_id = job.request.msg_id;
  r.session = job.request.session;
  r.task = job.request.task;
  r.engine = engine;
  r.submitted = job.request.submitted;
  return r;
}

/// Runs `run` with what the calling thread prints captured into its outcome (the calls it makes
/// print into the same capture).
template <typename Run>
TaskOutcome capturing(Run&& run) {
  TaskOutput printed;
  TaskOutcome out;
  {
    const output::CaptureScope capture(&printed);
    out = run();
  }
  out.out = printed.take(1) + out.out;
  out.err = printed.take(2) + out.err;
  return out;
}

TaskOutcome not_started(const std::string& task, std::int64_t engine) {
  TaskOutcome out;
  out.started = out.completed = Clock::now();
  out.error = cancelled_before_start(task, engine);
  return out;
}

std::int64_t micros(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
}

/// The error of an outcome that its job's verdict changes: aborted before it ran, cancelled
/// while it ran (whatever it returned: it was asked to stop).
void apply_verdict(const Job& job, TaskOutcome& out) {
  const bool ran = !(out.error && out.error->code == ErrorCode::cancelled &&
                     job.control->started_us.load() == 0);
  const std::string& task = job.request.task;
  switch (job.verdict.load()) {
    case Job::aborted:
      if (!ran) {
        out.error = make_error_record(
            ErrorCode::aborted, fmt::format("task '{}' was aborted before it ran", task), task);
      }
      break;
    case Job::cancelled:
      if (ran) {
        out.error = make_error_record(
            ErrorCode::cancelled, fmt::format("task '{}' was cancelled while it ran", task), task);
      }
      break;
    default:
      break;
  }
}

}  // namespace

TaskOutcome namespace_op(Runtime& runtime, const std::string& op, const Payload& payload,
                         std::int64_t engine) {
  TaskOutcome out;
  out.started = Clock::now();
  auto fail = [&](ErrorCode code, std::string message) {
    out.error = make_error_record(code, std::move(message), op, engine);
  };
  try {
    if (op == "push") {
      const Value values = decode(payload);
      for (const auto& [name, value] : values.as_map()) {
        if (value.kind() == Value::Kind::ref) {
          fail(ErrorCode::argument, fmt::format("cannot bind '{}' to a reference", name));
          break;
        }
      }
      if (out.ok()) {
        for (const auto& [name, value] : values.as_map())
          runtime.ns().set(name, value);
      }
    } else if (op == "pull") {
      const Value names = decode(payload);
      Value::List values;
      for (const auto& n : names.as_list()) {
        auto v = runtime.ns().get(n.as_string());
        if (!v) {
          fail(ErrorCode::name_error,
               fmt::format("name '{}' is not defined on engine {}", n.as_string(), engine));
          break;
        }
        values.push_back(std::move(*v));
      }
      if (out.ok()) out.result = encode(Value(std::move(values)));
    } else if (op == "clear") {
      runtime.clear_namespace();
    } else {
      fail(ErrorCode::usage, fmt::format("unknown namespace operation '{}'", op));
    }
  } catch (const Error& e) {
    fail(e.code(), e.what());
  }
  out.completed = Clock::now();
  return out;
}

net::Header TaskDispatcher::reply_to(const Job& job) const {
  return reply_of(job, d_.engine);
}

void TaskDispatcher::send_now(int channel, net::Header reply) {
  net::send(*d_.channels[static_cast<std::size_t>(channel)], d_.signer,
            net::make_message(std::move(reply)), false, d_.to_controller);
}

void TaskDispatcher::on_message(int channel, net::Envelope env) {
  net::Header h;
  try {
    h = net::decode_header(env.parts.at(0));
  } catch (const ProtocolError& e) {
    spdlog::warn("dropped a task message: {}", e.what());
    return;
  }
  switch (h.type) {
    case net::MsgType::ApplyRequest:
    case net::MsgType::MapRequest:
    case net::MsgType::ExecuteRequest:
    case net::MsgType::NamespaceRequest:
      break;
    case net::MsgType::ControlRequest: {
      // abort: tasks not started yet will not run; cancel: the same, and running tasks see
      // ipp::Context::cancelled() and are reported cancelled when they return.
      if (h.info.kind() != Value::Kind::list) return;
      std::vector<std::string> ids;
      for (const auto& v : h.info.as_list()) {
        if (v.kind() == Value::Kind::string) ids.push_back(v.as_string());
      }
      d_.jobs.control(ids, h.task == "cancel");
      return;
    }
    default:
      spdlog::warn("unexpected {} on a task channel", net::to_string(h.type));
      return;
  }
  auto job = std::make_shared<Job>();
  job->channel = channel;
  job->request.msg_id = h.msg_id;
  job->request.session = h.session;
  job->request.task = h.task;
  job->request.submitted = h.submitted;
  job->time_limit_ms = h.flags.time_limit_ms;
  if (!env.unreadable.empty()) {  // a part it needs never arrived: say so, run nothing
    net::Header r = reply_to(*job);
    r.error = make_error_record(
        ErrorCode::protocol,
        fmt::format("the request for task '{}' could not be read on engine {}: {}", h.task,
                    d_.engine, env.unreadable),
        h.task);
    r.error->engine = d_.engine;
    send_now(channel, std::move(r));
    return;
  }
  d_.jobs.add(job);
  submit(h, net::payload_of(env), job);
}

void TaskDispatcher::submit(const net::Header& h, Payload payload,
                            const std::shared_ptr<Job>& job) {
  Runtime& runtime = d_.runtime;
  const std::int64_t id = d_.engine;
  auto done = on_done(job);
  const bool is_map = h.type == net::MsgType::MapRequest;
  switch (h.type) {
    case net::MsgType::ExecuteRequest:
      runtime.submit_ordered(
          [&runtime, payload = std::move(payload), control = job->control, id]() -> TaskOutcome {
            if (!control->start()) return not_started("execute", id);
            const Value code = decode(payload);
            return capturing(
                [&] { return runtime.execute(code.as_string(), &control->cancelled); });
          },
          std::move(done));
      return;
    case net::MsgType::NamespaceRequest:
      runtime.submit_ordered(
          [&runtime, op = h.task, payload = std::move(payload), id, control = job->control]() {
            if (!control->start()) return not_started(op, id);
            return namespace_op(runtime, op, payload, id);
          },
          std::move(done));
      return;
    default:
      break;
  }
  bool ordered = !h.bind.empty();
  if (!ordered) {
    try {
      ordered = Runtime::has_refs(payload);
    } catch (const ProtocolError&) {
      // invoke reports the corrupt buffer to the client
    }
  }
  if (ordered) {
    runtime.submit_ordered(
        [&runtime, task = h.task, payload = std::move(payload), is_map, bind = h.bind,
         control = job->control, id]() {
          if (!control->start()) return not_started(task, id);
          return capturing(
              [&] { return runtime.run_now(task, payload, is_map, bind, &control->cancelled); });
        },
        std::move(done));
  } else if (is_map) {
    runtime.submit_map(h.task, std::move(payload), std::move(done), job->control);
  } else {
    runtime.submit(h.task, std::move(payload), std::move(done), job->control,
                   job->time_limit_ms == 0);
  }
}

std::function<void(TaskOutcome)> TaskDispatcher::on_done(std::shared_ptr<Job> job) const {
  return [replies = &d_.replies, id = d_.engine, clock = d_.clock,
          job = std::move(job)](TaskOutcome out) {
    if (job->replied.exchange(true)) {  // timed out: the client has its answer
      std::optional<net::Envelope> freed;
      if (job->verdict.load() == Job::timed_out && job->channel == 1) {
        net::Header f = reply_of(*job, id);
        f.type = net::MsgType::SlotFreed;
        freed = net::make_message(std::move(f));
      }
      replies->post(job->channel, std::move(freed), job->request.msg_id);
      return;
    }
    net::Header r = reply_of(*job, id);
    const std::int64_t offset = clock != nullptr ? clock->significant_offset_us() : 0;
    r.started = micros(out.started) + offset;
    r.completed = micros(out.completed) + offset;
    apply_verdict(*job, out);
    if (out.error) {
      out.error->engine = id;
      r.error = std::move(out.error);
    }
    if (!out.out.empty() || !out.err.empty()) {
      Value::Map printed;
      if (!out.out.empty()) printed.emplace("stdout", std::move(out.out));
      if (!out.err.empty()) printed.emplace("stderr", std::move(out.err));
      r.info = Value(std::move(printed));
    }
    net::Envelope reply =
        net::make_message(std::move(r), out.ok() ? std::move(out.result) : Payload{});
    replies->post(job->channel, std::move(reply), job->request.msg_id);
  };
}

void TaskDispatcher::enforce_limits() {
  const std::int64_t now = net::now_us();
  for (const auto& job : d_.jobs.expire(now)) {
    net::Header r = reply_to(*job);
    const std::int64_t offset = d_.clock != nullptr ? d_.clock->significant_offset_us() : 0;
    r.started = job->control->started_us.load() + offset;
    r.completed = now + offset;
    r.error = make_error_record(ErrorCode::timeout,
                                fmt::format("task '{}' ran longer than its time limit of {} ms; "
                                            "it was cancelled",
                                            job->request.task, job->time_limit_ms),
                                job->request.task);
    r.error->engine = d_.engine;
    // Its thread is still taken: the scheduler counts the slot busy until SlotFreed.
    r.info = Value::map({{"held", true}});
    send_now(job->channel, std::move(r));
  }
  if (const auto job = d_.jobs.past_grace(now)) {
    spdlog::error(
        "engine {}: task '{}' ({}) still runs {} ms after its time limit of {} ms and does "
        "not stop when cancelled; the engine exits (code {}) to be restarted",
        d_.engine, job->request.task, job->request.msg_id, d_.time_limit_grace.count(),
        job->time_limit_ms, net::kEngineTaskPastTimeLimit);
    spdlog::default_logger()->flush();
    std::_Exit(net::kEngineTaskPastTimeLimit);
  }
}

}  // namespace ipp::engine
