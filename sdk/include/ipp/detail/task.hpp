#pragma once

// Turns an ordinary C++ function into an ipp_task_v1: argument conversion from the wire,
// result encoding, map blocks, and error capture. Everything here runs inside the plugin.

#include <array>
#include <cstdint>
#include <exception>
#include <span>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "ipp/abi.h"
#include "ipp/codec.hpp"
#include "ipp/context.hpp"
#include "ipp/detail/convert.hpp"
#include "ipp/value.hpp"

namespace ipp::detail {

template <class F>
struct FnTraits;
template <class R, class... A>
struct FnTraits<R (*)(A...)> {
  using result = R;
  using params = std::tuple<A...>;
};
template <class R, class... A>
struct FnTraits<R (*)(A...) noexcept> : FnTraits<R (*)(A...)> {};

template <class A>
inline constexpr bool is_context_v = std::is_same_v<std::remove_cvref_t<A>, Context>;

// ---- results -----------------------------------------------------------------------------

template <class R>
Value to_value(R&& r);

template <class R>
struct ToValue {
  static Value get(R r) { return Value(std::move(r)); }
};
template <class E>
requires(!Numeric<E> && !std::is_same_v<E, std::string> &&
         !std::is_same_v<E, bool>) struct ToValue<std::vector<E>> {
  static Value get(std::vector<E> v) {
    Value::List out;
    out.reserve(v.size());
    for (auto& e : v)
      out.push_back(to_value(std::move(e)));
    return Value(std::move(out));
  }
};
template <class E>
struct ToValue<std::map<std::string, E>> {
  static Value get(std::map<std::string, E> m) {
    Value::Map out;
    for (auto& [k, e] : m)
      out.emplace(k, to_value(std::move(e)));
    return Value(std::move(out));
  }
};
template <class... E>
struct ToValue<std::tuple<E...>> {
  static Value get(std::tuple<E...> t) {
    return std::apply(
        [](auto&&... e) { return Value(Value::List{to_value(std::forward<decltype(e)>(e))...}); },
        std::move(t));
  }
};
template <class A, class B>
struct ToValue<std::pair<A, B>> {
  static Value get(std::pair<A, B> p) {
    return Value(Value::List{to_value(std::move(p.first)), to_value(std::move(p.second))});
  }
};

template <class R>
Value to_value(R&& r) {
  using T = std::remove_cvref_t<R>;
  static_assert(!std::is_same_v<T, std::string_view> && !std::is_pointer_v<T>,
                "ipp: a task may not return a view or a pointer (it would dangle); return "
                "std::string or std::vector instead");
  return ToValue<T>::get(std::forward<R>(r));
}

/// The DType written for a numeric scalar result in map blocks, or -1.
template <class R>
constexpr std::int32_t result_dtype() {
  if constexpr (Numeric<R>)
    return static_cast<std::int32_t>(dtype_v<R>);
  else
    return -1;
}

// ---- arguments ---------------------------------------------------------------------------

/// Holds one converted argument for the length of a call.
template <class A>
struct ArgHolder {
  using T = std::remove_cvref_t<A>;
  static_assert(!std::is_pointer_v<T>, "ipp: task parameters may not be pointers");
  T value;
  static ArgHolder read(const fb::Value* v, FrameTable f) { return {Convert<T>::from_wire(v, f)}; }
  decltype(auto) pass() {
    if constexpr (std::is_lvalue_reference_v<A>)
      return static_cast<A>(value);
    else
      return std::move(value);
  }
};

/// std::span<const E>: the array's elements in place when they already are E's (the
/// zero-copy path); any other sequence is converted into storage owned for the call.
template <class E>
struct ArgHolder<std::span<const E>> {
  static_assert(Numeric<E>, "ipp: std::span parameters must hold a numeric type");
  std::span<const E> borrowed;
  std::vector<E> owned;
  bool use_owned = false;  // the span is made in pass(): holders move, and owned's data with them

  static ArgHolder read(const fb::Value* v, FrameTable f) {
    ArgHolder h;
    if (v->data_type() == fb::Data::Array) {
      const ArrayRef a = array_ref(v->data_as_Array(), f);
      if (a.dtype == dtype_v<E> && reinterpret_cast<std::uintptr_t>(a.data) % alignof(E) == 0) {
        h.borrowed = {reinterpret_cast<const E*>(a.data), static_cast<std::size_t>(a.size)};
        return h;
      }
    }
    h.owned = convert_sequence_from_wire<E>(v, f);
    h.use_owned = true;
    return h;
  }
  std::span<const E> pass() const { return use_owned ? std::span<const E>(owned) : borrowed; }
};
template <class E>
struct ArgHolder<const std::span<const E>&> : ArgHolder<std::span<const E>> {};
template <class E>
struct ArgHolder<std::span<const E>&> : ArgHolder<std::span<const E>> {};

/// Passes map elements through, except span holders, which become their span. Holders are
/// temporaries of the full expression that calls the task, so the span outlives the call.
template <class T>
inline constexpr bool is_span_holder_v = false;
template <class E>
inline constexpr bool is_span_holder_v<ArgHolder<std::span<const E>>> = true;

template <class T>
decltype(auto) unwrap(T&& x) {
  if constexpr (is_span_holder_v<std::remove_cvref_t<T>>) {
    return x.pass();
  } else {
    return std::forward<T>(x);
  }
}

/// Runs `fn` after converting the wire arguments; Context parameters receive `ctx`.
template <auto Fn, class... A, std::size_t... I>
decltype(auto) call_with_args(Context& ctx,
                              const flatbuffers::Vector<flatbuffers::Offset<fb::Value>>* args,
                              FrameTable frames, const std::uint32_t* wire_index,
                              std::index_sequence<I...>) {
  // Converted arguments live in this tuple for the length of the call; string_view and span
  // parameters point into the received buffer or into this storage.
  auto holders = std::tuple<std::conditional_t<is_context_v<A>, int, ArgHolder<A>>...>{
      [&]() -> std::conditional_t<is_context_v<A>, int, ArgHolder<A>> {
        if constexpr (is_context_v<A>) {
          return 0;
        } else {
          try {
            return ArgHolder<A>::read(args->Get(wire_index[I]), frames);
          } catch (const ArgumentError& e) {
            rethrow_with_prefix(
                e, "argument " + std::to_string(wire_index[I] + 1) + " (" + type_name<A>() + "): ");
          }
        }
      }()...};
  auto pass = [&](auto& h) -> decltype(auto) {
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(h)>, int>)
      return (ctx);
    else
      return h.pass();
  };
  return Fn(pass(std::get<I>(holders))...);
}

/// Reports the exception being handled through the host; never throws.
void report_current_exception(const ipp_host_v1* host, std::uint64_t element) noexcept;
/// Verifies that `args` is a list of `arity` values; throws ArgumentError otherwise.
const flatbuffers::Vector<flatbuffers::Offset<fb::Value>>* expect_args(const ipp_payload_v1& args,
                                                                       std::int32_t arity);
void set_result(const ipp_host_v1* host, const Value& value);
void set_null_result(const ipp_host_v1* host);

template <class... A>
constexpr std::int32_t arity_of() {
  return static_cast<std::int32_t>(((is_context_v<A> ? 0 : 1) + ... + 0));
}

/// Maps each C++ parameter position to its position among the wire arguments.
template <class... A>
constexpr std::array<std::uint32_t, sizeof...(A) + 1> wire_indices() {
  std::array<std::uint32_t, sizeof...(A) + 1> out{};
  std::uint32_t next = 0;
  std::size_t i = 0;
  ((out[i++] = is_context_v<A> ? 0 : next++), ...);
  return out;
}

template <auto Fn, class R, class... A>
struct TaskImpl {
  static constexpr auto kIndices = wire_indices<A...>();

  static void invoke(const ipp_call_v1* call) noexcept {
    try {
      Context ctx(call->host);
      const auto* args = expect_args(call->args, arity_of<A...>());
      const FrameTable frames{call->args.frames, call->args.frame_count};
      if constexpr (std::is_void_v<R>) {
        call_with_args<Fn, A...>(ctx, args, frames, kIndices.data(),
                                 std::index_sequence_for<A...>{});
        set_null_result(call->host);
      } else {
        set_result(call->host, to_value(call_with_args<Fn, A...>(ctx, args, frames, kIndices.data(),
                                                                 std::index_sequence_for<A...>{})));
      }
    } catch (...) {
      report_current_exception(call->host, UINT64_MAX);
    }
  }

  /// Reads element i of a map argument sequence as the parameter type. What the sequence is
  /// (an array of the parameter's own type, another array, a range, a list) is found once,
  /// not at each element.
  template <class P>
  class Reader {
   public:
    using T = std::remove_cvref_t<P>;
    Reader(const fb::Value* seq, FrameTable f) : seq_(seq), frames_(f) {
      if (seq->data_type() == fb::Data::Array) {
        array_ = array_ref(seq->data_as_Array(), f);
        if constexpr (Numeric<T>)
          kind_ = array_.dtype == dtype_v<T> ? Kind::same : Kind::array;
        else
          kind_ = Kind::array;
      } else if (seq->data_type() == fb::Data::Range) {
        const auto* r = seq->data_as_Range();
        range_ = Range{r->start(), r->stop(), r->step()};
        kind_ = Kind::range;
      } else if (seq->data_type() == fb::Data::List) {
        items_ = seq->data_as_List()->items();
        kind_ = Kind::list;
      }
    }
    /// The elements in place when the sequence is an array of T itself, else null.
    [[nodiscard]] const std::byte* same_type_data() const noexcept {
      return kind_ == Kind::same ? array_.data : nullptr;
    }
    auto read(std::uint64_t i) const {
      if constexpr (Numeric<T>) {
        switch (kind_) {
          case Kind::same:
            return load<T>(array_.data, i);
          case Kind::range:
            return convert_number<T>(range_[i]);
          case Kind::array:
            return visit_dtype(array_.dtype, [&](auto tag) {
              return convert_number<T>(load<decltype(tag)>(array_.data, i));
            });
          default:
            break;
        }
      } else if constexpr (std::is_same_v<T, Value>) {
        if (kind_ == Kind::range) return Value(range_[i]);
        if (kind_ == Kind::array) {
          return visit_dtype(array_.dtype, [&](auto tag) {
            using S = decltype(tag);
            if constexpr (std::is_floating_point_v<S>)
              return Value(static_cast<double>(load<S>(array_.data, i)));
            else
              return Value(load<S>(array_.data, i));
          });
        }
      }
      if (kind_ != Kind::list) throw_mismatch(type_name<T>(), wire_type_name(seq_));
      if constexpr (is_span_v<T>) {
        return ArgHolder<T>::read(items_->Get(static_cast<flatbuffers::uoffset_t>(i)), frames_);
      } else {
        return Convert<T>::from_wire(items_->Get(static_cast<flatbuffers::uoffset_t>(i)), frames_);
      }
    }

   private:
    enum class Kind : std::uint8_t { other, same, array, range, list };
    const fb::Value* seq_;
    FrameTable frames_;
    Kind kind_ = Kind::other;
    ArrayRef array_{};
    Range range_{};
    const flatbuffers::Vector<flatbuffers::Offset<fb::Value>>* items_ = nullptr;
  };
  template <class P>
  using ReaderFor = std::conditional_t<is_context_v<P>, int, Reader<P>>;

  /// A numeric task over arrays of its parameters' own types: the elements are read where they
  /// are, in one loop the compiler can see through. False (nothing done) for other sequences.
  template <std::size_t... I, class Readers>
  static bool run_same_type_map(const ipp_map_call_v1* call, const Readers& readers,
                                std::index_sequence<I...>) {
    if constexpr (Numeric<R> && sizeof...(A) > 0 && (Numeric<std::remove_cvref_t<A>> && ...)) {
      const std::array<const std::byte*, sizeof...(A)> data{
          std::get<I>(readers).same_type_data()...};
      for (const auto* d : data)
        if (d == nullptr) return false;
      auto* out = static_cast<R*>(call->out);
      const std::uint64_t begin = call->begin, end = call->end;
      std::uint64_t i = begin;
      try {
        for (; i < end; ++i)
          out[i - begin] = Fn(load<std::remove_cvref_t<A>>(data[I], i)...);
      } catch (...) {
        report_current_exception(call->host, i);
      }
      return true;
    } else {
      (void)call;
      (void)readers;
      return false;
    }
  }

  template <std::size_t... I>
  static void run_map(const ipp_map_call_v1* call, std::index_sequence<I...> seq) {
    Context ctx(call->host);
    const auto* args = expect_args(call->args, arity_of<A...>());
    const FrameTable frames{call->args.frames, call->args.frame_count};
    std::tuple<ReaderFor<A>...> readers{[&]() -> ReaderFor<A> {
      if constexpr (is_context_v<A>)
        return 0;
      else
        return Reader<A>(args->Get(kIndices[I]), frames);
    }()...};
    if (run_same_type_map(call, readers, seq)) return;
    auto arg = [&](auto& reader, std::uint64_t i) -> decltype(auto) {
      if constexpr (std::is_same_v<std::remove_cvref_t<decltype(reader)>, int>)
        return (ctx);
      else {
        return reader.read(i);  // span holders are unwrapped at the call (see unwrap)
      }
    };
    [[maybe_unused]] auto* out = static_cast<std::conditional_t<Numeric<R>, R, char>*>(call->out);
    Encoder enc;
    std::vector<flatbuffers::Offset<fb::Value>> results;
    std::uint64_t i = call->begin;
    try {
      for (; i < call->end; ++i) {
        if constexpr (Numeric<R>) {
          out[i - call->begin] = Fn(unwrap(arg(std::get<I>(readers), i))...);
        } else if constexpr (std::is_void_v<R>) {
          Fn(unwrap(arg(std::get<I>(readers), i))...);
          results.push_back(enc.encode_null());
        } else {
          results.push_back(enc.encode(to_value(Fn(unwrap(arg(std::get<I>(readers), i))...))));
        }
      }
    } catch (...) {
      report_current_exception(call->host, i);
      return;
    }
    if constexpr (!Numeric<R>) {
      Payload p = enc.finish(enc.encode_list(results));
      std::vector<ipp_bytes_v1> scratch;
      const ipp_payload_v1 view = p.abi_view(scratch);
      call->host->set_result(call->host->self, &view);
    }
  }

  static void invoke_map(const ipp_map_call_v1* call) noexcept {
    try {
      run_map(call, std::index_sequence_for<A...>{});
    } catch (...) {
      report_current_exception(call->host, UINT64_MAX);
    }
  }
};

/// Where IPP_TASK registrations collect, one list per plugin (the SDK is linked into each
/// plugin with hidden visibility, so every plugin has its own).
std::vector<ipp_task_v1>& task_registry();

/// Adds a task to this plugin's registry at static-initialisation time.
struct TaskRegistrar {
  explicit TaskRegistrar(const ipp_task_v1& task) { task_registry().push_back(task); }
};

/// Keeps a string alive for the plugin's lifetime and returns its C string.
const char* intern(std::string s);

template <auto Fn>
ipp_task_v1 make_task(const char* name, const char* doc) {
  using Traits = FnTraits<decltype(Fn)>;
  using R = typename Traits::result;
  return [&]<class... A>(std::tuple<A...>*) {
    using Impl = TaskImpl<Fn, R, A...>;
    std::string sig = std::string(name) + "(";
    bool first = true;
    ((is_context_v<A> ? void()
                      : (sig += (first ? "" : ", ") + type_name<A>(), first = false, void())),
     ...);
    sig += ") -> " + type_name<R>();
    return ipp_task_v1{
        name,          intern(std::move(sig)), doc, arity_of<A...>(), result_dtype<R>(),
        &Impl::invoke, &Impl::invoke_map};
  }(static_cast<typename Traits::params*>(nullptr));
}

/// Builds the manifest from the registry (called once by the plugin's entry point).
const ipp_manifest_v1* make_manifest(const char* plugin_name, const char* plugin_version,
                                     std::uint32_t abi_version);

}  // namespace ipp::detail
