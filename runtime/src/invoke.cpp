#include "ipp/runtime/invoke.hpp"

#include <algorithm>
#include <mutex>
#include <vector>

#include <fmt/format.h>
#include <oneapi/tbb/blocked_range.h>
#include <oneapi/tbb/parallel_for.h>

#include "ipp/runtime/output.hpp"

#include "ipp/detail/wire.hpp"
#include "ipp/runtime/executor.hpp"
#include "ipp/runtime/memory.hpp"

namespace ipp {

namespace {

/// The host side of one plugin call: implements ipp_host_v1 and collects the outcome.
class HostCall {
 public:
  HostCall(const InvokeContext& ctx, const TaskHandle& task) : ctx_(ctx), task_(task) {
    host_.self = this;
    host_.engine_id = ctx.engine_id;
    host_.cancelled = &HostCall::cancelled;
    host_.ns_get = &HostCall::ns_get;
    host_.ns_set = &HostCall::ns_set;
    host_.ns_erase = &HostCall::ns_erase;
    host_.set_result = &HostCall::set_result;
    host_.set_error = &HostCall::set_error;
  }

  [[nodiscard]] const ipp_host_v1* host() const noexcept { return &host_; }
  std::optional<Payload> result;
  std::optional<ErrorRecord> error;

 private:
  static HostCall& me(void* self) { return *static_cast<HostCall*>(self); }

  static int cancelled(void* self) {
    const auto* flag = me(self).ctx_.cancelled;
    return flag != nullptr && flag->load(std::memory_order_relaxed) ? 1 : 0;
  }

  static int ns_get(void* self, const char* name, std::size_t size, void* sink,
                    ipp_payload_sink_v1 deliver) {
    Namespace* ns = me(self).ctx_.ns;
    if (ns == nullptr) return 0;
    auto value = ns->get(std::string_view(name, size));
    if (!value) return 0;
    const Payload p = encode(*value);
    std::vector<ipp_bytes_v1> scratch;
    const ipp_payload_v1 view = p.abi_view(scratch);
    deliver(sink, &view);
    return 1;
  }

  static void ns_set(void* self, const char* name, std::size_t size, const ipp_payload_v1* value) {
    Namespace* ns = me(self).ctx_.ns;
    if (ns == nullptr) return;
    const auto* root = flatbuffers::GetRoot<fb::Value>(value->root.data);
    // Copies: the plugin's buffers die when the call returns, and the value must not keep
    // any of the plugin's memory alive.
    ns->set(std::string(name, size),
            decode(root, detail::FrameTable{value->frames, value->frame_count}, nullptr, {}));
  }

  static int ns_erase(void* self, const char* name, std::size_t size) {
    Namespace* ns = me(self).ctx_.ns;
    return ns != nullptr && ns->erase(std::string_view(name, size)) ? 1 : 0;
  }

  static void set_result(void* self, const ipp_payload_v1* value) {
    Payload p;
    p.root = Buffer::copy(value->root.data, value->root.size);
    p.frames.reserve(value->frame_count);
    for (std::size_t i = 0; i < value->frame_count; ++i) {
      p.frames.push_back(Buffer::copy(value->frames[i].data, value->frames[i].size));
    }
    me(self).result = std::move(p);
  }

  static void set_error(void* self, std::int32_t code, const char* type, std::size_t type_size,
                        const char* message, std::size_t message_size, std::uint64_t element) {
    HostCall& call = me(self);
    ErrorRecord r;
    r.code = static_cast<ErrorCode>(code);
    r.type.assign(type, type_size);
    r.message.assign(message, message_size);
    r.task = call.task_.info().qualified_name();
    r.plugin = call.task_.info().plugin;
    r.engine = call.ctx_.engine_id;
    if (element != UINT64_MAX) r.element = element;
    call.error = std::move(r);
  }

  const InvokeContext& ctx_;
  const TaskHandle& task_;
  ipp_host_v1 host_{};
};

ErrorRecord make_error(ErrorCode code, const std::string& type, const std::string& message,
                       const TaskHandle& task, const InvokeContext& ctx) {
  ErrorRecord r;
  r.code = code;
  r.type = type;
  r.message = message;
  r.task = task.info().qualified_name();
  r.plugin = task.info().plugin;
  r.engine = ctx.engine_id;
  return r;
}

/// The error of the exception being handled (an ipp::Error keeps its code and type).
ErrorRecord current_error(const TaskHandle& task, const InvokeContext& ctx) {
  try {
    throw;
  } catch (const Error& e) {
    return make_error(e.code(), std::string(error_type_name(e.code())), e.what(), task, ctx);
  } catch (const std::exception& e) {
    return make_error(ErrorCode::unknown, "std::exception", e.what(), task, ctx);
  }
}

/// Aligns and verifies a received payload; fills `scratch` with its frame table.
const fb::Value* checked_root(const Payload& in, Buffer& aligned,
                              std::vector<ipp_bytes_v1>& scratch) {
  aligned = in.root.aligned(8);
  const fb::Value* root = verify(aligned.bytes());
  scratch.clear();
  for (const auto& f : in.frames)
    scratch.push_back({f.data(), f.size()});
  return root;
}

}  // namespace

TaskOutcome invoke(const TaskHandle& task, const Payload& args, const InvokeContext& ctx) noexcept {
  TaskOutcome out;
  // What it prints is its own, unless a caller (execute, an ordered call) captures already.
  TaskOutput printed;
  std::optional<output::CaptureScope> capture;
  if (output::current() == nullptr) capture.emplace(&printed);
  out.started = Clock::now();
  try {
    Buffer root;
    std::vector<ipp_bytes_v1> frames;
    checked_root(args, root, frames);
    HostCall call(ctx, task);
    const ipp_call_v1 abi_call{call.host(),
                               {{root.data(), root.size()}, frames.data(), frames.size()}};
    task.abi().invoke(&abi_call);
    if (call.error) {
      out.error = std::move(call.error);
    } else if (call.result) {
      out.result = std::move(*call.result);
    } else {
      out.error = make_error(ErrorCode::protocol, std::string(error_type_name(ErrorCode::protocol)),
                             "the task returned neither a result nor an error", task, ctx);
    }
  } catch (const std::exception&) {
    out.error = current_error(task, ctx);
  }
  out.completed = Clock::now();
  if (capture) {
    capture.reset();
    out.out = printed.take(1);
    out.err = printed.take(2);
  }
  return out;
}

TaskOutcome invoke_map(const TaskHandle& task, const Payload& sequences, const InvokeContext& ctx,
                       Executor& executor) noexcept {
  TaskOutcome out;
  // Every block prints into the map's output, whichever thread runs it.
  TaskOutput printed;
  TaskOutput* const into = output::current() != nullptr ? output::current() : &printed;
  out.started = Clock::now();
  try {
    Buffer root_buf;
    std::vector<ipp_bytes_v1> frames;
    const fb::Value* root = checked_root(sequences, root_buf, frames);
    const detail::FrameTable table{frames.data(), frames.size()};
    const auto* list = root->data_as_List();
    if (list == nullptr) throw ArgumentError("map arguments must be a list of sequences");
    const auto* items = list->items();
    const auto arity = static_cast<std::int64_t>(items->size());
    if (arity != task.info().arity) {
      throw ArgumentError(fmt::format("expected {} sequence{} (one per argument), got {}",
                                      task.info().arity, task.info().arity == 1 ? "" : "s", arity));
    }
    std::uint64_t n = 0;
    for (std::int64_t i = 0; i < arity; ++i) {
      std::uint64_t len = 0;
      try {
        len = detail::wire_sequence_size(items->Get(static_cast<flatbuffers::uoffset_t>(i)), table);
      } catch (const ArgumentError& e) {
        throw ArgumentError(fmt::format("sequence {}: {}", i + 1, e.what()));
      }
      if (i == 0)
        n = len;
      else if (len != n) {
        throw ArgumentError(fmt::format(
            "sequences differ in length: sequence 1 has {} elements, sequence {} has {}", n, i + 1,
            len));
      }
    }

    const ipp_payload_v1 abi_args{{root_buf.data(), root_buf.size()}, frames.data(), frames.size()};
    const std::int32_t dtype = task.info().result_dtype;
    std::byte* out_data = nullptr;
    Buffer out_buffer;
    if (dtype >= 0) {
      const auto type = static_cast<DType>(dtype);
      out_buffer = Buffer::allocate(
          map_output_bytes(n, dtype_size(type), std::string(to_string(type)), ctx.max_map_output),
          &out_data);
    }
    const std::size_t elem = dtype >= 0 ? dtype_size(static_cast<DType>(dtype)) : 0;

    // Enough chunks for every thread to stay busy when elements take uneven time, few enough
    // that per-chunk overhead vanishes for cheap tasks.
    const std::uint64_t target_chunks = static_cast<std::uint64_t>(executor.threads()) * 4;
    const std::uint64_t grain = std::max<std::uint64_t>(
        1, (n + target_chunks - 1) / std::max<std::uint64_t>(1, target_chunks));

    std::mutex mutex;
    std::optional<ErrorRecord> first_error;
    std::vector<std::pair<std::uint64_t, Payload>> pieces;  // non-numeric results, by chunk start

    auto body = [&](const tbb::blocked_range<std::uint64_t>& r) {
      const output::CaptureScope capture(into);
      HostCall call(ctx, task);
      const ipp_map_call_v1 mc{call.host(), abi_args, r.begin(), r.end(),
                               out_data == nullptr ? nullptr : out_data + r.begin() * elem};
      task.abi().invoke_map(&mc);
      std::lock_guard lock(mutex);
      if (call.error) {
        if (!first_error ||
            call.error->element.value_or(UINT64_MAX) < first_error->element.value_or(UINT64_MAX)) {
          first_error = std::move(call.error);
        }
      } else if (dtype < 0) {
        if (call.result)
          pieces.emplace_back(r.begin(), std::move(*call.result));
        else if (!first_error) {
          first_error =
              make_error(ErrorCode::protocol, std::string(error_type_name(ErrorCode::protocol)),
                         "a map block returned no results", task, ctx);
        }
      }
    };
    executor.run([&] {
      tbb::parallel_for(tbb::blocked_range<std::uint64_t>(0, n, grain), body,
                        tbb::simple_partitioner());
    });

    if (first_error) {
      out.error = std::move(first_error);
    } else if (dtype >= 0) {
      Encoder enc;
      const std::uint64_t shape[] = {n};
      out.result = enc.finish(enc.encode_array(static_cast<DType>(dtype), shape, out_buffer));
    } else {
      std::sort(pieces.begin(), pieces.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      Value::List all;
      all.reserve(n);
      for (auto& [start, piece] : pieces) {
        Value part = decode(piece);
        for (auto& v : part.as_list())
          all.push_back(std::move(v));
      }
      out.result = encode(Value(std::move(all)));
    }
  } catch (const std::exception&) {
    out.error = current_error(task, ctx);
  }
  out.completed = Clock::now();
  if (into == &printed) {
    out.out = printed.take(1);
    out.err = printed.take(2);
  }
  return out;
}

}  // namespace ipp
