#include "ipp/net/header.hpp"

#include <array>

#include <chrono>

#include <fmt/format.h>

#include "ipp/codec.hpp"
#include "random.hpp"

namespace ipp::net {

namespace {
flatbuffers::Offset<flatbuffers::String> str(flatbuffers::FlatBufferBuilder& b,
                                             const std::string& s) {
  return s.empty() ? flatbuffers::Offset<flatbuffers::String>() : b.CreateString(s);
}
std::string get(const flatbuffers::String* s) {
  return s == nullptr ? std::string() : s->str();
}

flatbuffers::Offset<fb::Dependency> encode_dependency(flatbuffers::FlatBufferBuilder& b,
                                                      const Dependency& d) {
  if (d.empty()) return {};
  std::vector<flatbuffers::Offset<flatbuffers::String>> ids;
  ids.reserve(d.ids.size());
  for (const auto& id : d.ids)
    ids.push_back(b.CreateString(id));
  return fb::CreateDependency(b, b.CreateVector(ids), d.all, d.success, d.failure);
}

Dependency decode_dependency(const fb::Dependency* f) {
  Dependency d;
  if (f == nullptr) return d;
  if (f->ids() != nullptr) {
    for (const auto* id : *f->ids())
      d.ids.push_back(get(id));
  }
  d.all = f->all();
  d.success = f->success();
  d.failure = f->failure();
  return d;
}

flatbuffers::Offset<fb::TaskFlags> encode_flags(flatbuffers::FlatBufferBuilder& b,
                                                const TaskFlags& f) {
  const auto after = encode_dependency(b, f.after);
  const auto follow = encode_dependency(b, f.follow);
  const auto targets = f.targets.empty() ? flatbuffers::Offset<flatbuffers::Vector<std::int64_t>>()
                                         : b.CreateVector(f.targets);
  return fb::CreateTaskFlags(b, f.retries, after, follow, targets, f.priority, f.time_limit_ms);
}

}  // namespace

namespace {
/// A task name as an error record carries it: whole unless longer than any request may name.
std::string shown_task_name_if_long(const std::string& task) {
  return task.size() > kMaxTaskNameBytes ? shown_task_name(task) : task;
}
}  // namespace

Buffer encode_header(const Header& h) {
  Encoder enc({}, 256);
  auto& b = enc.builder();
  flatbuffers::Offset<fb::Value> info;
  if (!h.info.is_null()) info = enc.encode(h.info);
  flatbuffers::Offset<fb::ErrorInfo> error;
  if (h.error) {
    const auto& e = *h.error;
    // A task may throw any message: a long one is cut here, where every reply is made, so that
    // the reply fits a header and its caller gets an answer.
    std::string cut;
    if (e.message.size() > kMaxErrorMessageBytes) {
      cut = fmt::format("{}... ({} bytes cut)",
                        std::string_view(e.message).substr(0, kMaxErrorMessageBytes),
                        e.message.size() - kMaxErrorMessageBytes);
    }
    error = fb::CreateErrorInfo(
        b, static_cast<std::int32_t>(e.code), str(b, e.type), str(b, cut.empty() ? e.message : cut),
        str(b, shown_task_name_if_long(e.task)), str(b, e.plugin), e.engine,
        e.element ? static_cast<std::int64_t>(*e.element) : -1, static_cast<std::uint32_t>(e.line),
        static_cast<std::uint32_t>(e.column));
  }
  const auto msg_id = str(b, h.msg_id);
  const auto parent = str(b, h.parent_id);
  const auto session = str(b, h.session);
  const auto task = str(b, h.task);
  flatbuffers::Offset<fb::TaskFlags> flags;
  if (!h.flags.is_default()) flags = encode_flags(b, h.flags);
  const auto bind = h.bind.empty() ? flatbuffers::Offset<flatbuffers::String>() : str(b, h.bind);
  fb::HeaderBuilder hb(b);
  hb.add_type(h.type);
  hb.add_msg_id(msg_id);
  hb.add_parent_id(parent);
  hb.add_session(session);
  hb.add_task(task);
  hb.add_target(h.target);
  hb.add_engine(h.engine);
  hb.add_submitted(h.submitted);
  hb.add_started(h.started);
  hb.add_completed(h.completed);
  if (h.error) hb.add_error(error);
  hb.add_threads(h.threads);
  if (!h.info.is_null()) hb.add_info(info);
  if (!h.bind.empty()) hb.add_bind(bind);
  if (h.timeout_ms != 0) hb.add_timeout_ms(h.timeout_ms);
  if (!h.flags.is_default()) hb.add_flags(flags);
  b.Finish(hb.Finish());
  if (b.GetSize() > kMaxHeaderBytes) {
    throw ProtocolError(
        fmt::format("a message header of {} bytes is larger than the {} MiB a peer "
                    "accepts",
                    b.GetSize(), kMaxHeaderBytes >> 20));
  }
  auto detached = std::make_shared<flatbuffers::DetachedBuffer>(b.Release());
  const auto* data = reinterpret_cast<const std::byte*>(detached->data());
  const std::size_t size = detached->size();
  return Buffer(std::shared_ptr<const void>(std::move(detached)), data, size);
}

Header decode_header(const Buffer& received) {
  const Buffer buffer = received.aligned(8);
  if (buffer.size() < 8 || buffer.size() > kMaxHeaderBytes) {
    throw ProtocolError(fmt::format("message header of {} bytes is malformed", buffer.size()));
  }
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(buffer.data());
  flatbuffers::Verifier verifier(bytes, buffer.size(), 64, buffer.size() / 4 + 64);
  if (!fb::VerifyHeaderBuffer(verifier)) throw ProtocolError("message header failed verification");
  const auto* f = fb::GetHeader(bytes);
  if (static_cast<std::uint8_t>(f->type()) > static_cast<std::uint8_t>(MsgType::MAX)) {
    throw ProtocolError(fmt::format("unknown message type {}", static_cast<int>(f->type())));
  }
  Header h;
  h.type = f->type();
  h.msg_id = get(f->msg_id());
  h.parent_id = get(f->parent_id());
  h.session = get(f->session());
  h.task = get(f->task());
  h.target = f->target();
  h.engine = f->engine();
  h.submitted = f->submitted();
  h.started = f->started();
  h.completed = f->completed();
  h.threads = f->threads();
  h.bind = get(f->bind());
  h.timeout_ms = f->timeout_ms();
  if (const auto* flags = f->flags()) {
    h.flags.retries = flags->retries();
    h.flags.after = decode_dependency(flags->after());
    h.flags.follow = decode_dependency(flags->follow());
    if (const auto* targets = flags->targets(); targets != nullptr) {
      // The verifier does not check that 8-byte elements are aligned (a builder aligns them).
      if (reinterpret_cast<std::uintptr_t>(targets->data()) % alignof(std::int64_t) != 0)
        throw ProtocolError("message header with a misaligned list of targets");
      h.flags.targets.assign(targets->begin(), targets->end());
    }
    h.flags.priority = flags->priority();
    h.flags.time_limit_ms = flags->time_limit_ms();
  }
  if (const auto* e = f->error()) {
    ErrorRecord r;
    r.code = static_cast<ErrorCode>(e->code());
    r.type = get(e->type());
    r.message = get(e->message());
    r.task = get(e->task());
    r.plugin = get(e->plugin());
    r.engine = e->engine();
    if (e->element() >= 0) r.element = static_cast<std::uint64_t>(e->element());
    r.line = e->line();
    r.column = e->column();
    h.error = std::move(r);
  }
  if (const auto* info = f->info()) h.info = decode(info, detail::FrameTable{}, nullptr, {});
  return h;
}

std::string new_id() {
  unsigned char raw[16];
  const auto ms =
      static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                     std::chrono::system_clock::now().time_since_epoch())
                                     .count());
  for (int i = 0; i < 6; ++i)
    raw[i] = static_cast<unsigned char>(ms >> (8 * (5 - i)));
  random_bytes(raw + 6, sizeof raw - 6);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string hex(2 * sizeof raw, '0');
  for (std::size_t i = 0; i < sizeof raw; ++i) {
    hex[2 * i] = kHex[raw[i] >> 4];
    hex[2 * i + 1] = kHex[raw[i] & 0xf];
  }
  return hex;
}

namespace {

/// The value of each lowercase hex digit; 0xff for every other byte.
constexpr std::array<std::uint8_t, 256> kHexValue = [] {
  std::array<std::uint8_t, 256> t{};
  t.fill(0xff);
  for (int c = '0'; c <= '9'; ++c)
    t[static_cast<std::size_t>(c)] = static_cast<std::uint8_t>(c - '0');
  for (int c = 'a'; c <= 'f'; ++c)
    t[static_cast<std::size_t>(c)] = static_cast<std::uint8_t>(c - 'a' + 10);
  return t;
}();

}  // namespace

std::optional<TaskId> TaskId::parse(std::string_view text) noexcept {
  if (text.size() != 32) return std::nullopt;
  // Every scheduler and hub turn parses ids: one table lookup per digit, one test at the end.
  std::uint64_t half[2] = {0, 0};
  std::uint8_t bad = 0;
  for (std::size_t h = 0; h < 2; ++h) {
    for (std::size_t i = 0; i < 16; ++i) {
      const std::uint8_t digit = kHexValue[static_cast<unsigned char>(text[16 * h + i])];
      bad |= digit;
      half[h] = (half[h] << 4) | (digit & 0xf);
    }
  }
  if (bad & 0xf0) return std::nullopt;
  return TaskId{half[0], half[1]};
}

std::string TaskId::str() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out(32, '0');
  for (std::size_t i = 0; i < 16; ++i) {
    out[15 - i] = kDigits[(hi >> (4 * i)) & 0xf];
    out[31 - i] = kDigits[(lo >> (4 * i)) & 0xf];
  }
  return out;
}

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool is_task_request(MsgType t) noexcept {
  return t == MsgType::ApplyRequest || t == MsgType::MapRequest || t == MsgType::ExecuteRequest ||
         t == MsgType::NamespaceRequest;
}

const char* to_string(MsgType type) noexcept {
  return fb::EnumNameMsgType(type);
}

std::string shown_task_name(std::string_view task) {
  if (task.size() <= 64) return std::string(task);
  return fmt::format("{}... ({} bytes)", task.substr(0, 48), task.size());
}

}  // namespace ipp::net
