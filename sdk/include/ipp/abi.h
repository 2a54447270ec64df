/* The C ABI between the ipp runtime and plugins.
 *
 * Plugins and the runtime share no C++ objects: arguments, results and namespace values cross as
 * FlatBuffers buffers (ipp/fb/value_generated.h) plus side frames, errors cross as strings, and
 * everything the runtime offers a task is a function in ipp_host_v1. That keeps a plugin's
 * objects, vtables and exceptions inside the plugin, so a plugin can be unloaded safely and
 * a plugin compiled by a different compiler still works.
 *
 * Anything changed here, or in the value schema, bumps IPP_ABI_VERSION. The runtime refuses a
 * plugin whose manifest carries another ABI version, before calling anything else in it. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define IPP_ABI_VERSION 1u

/* Name of the Boost.DLL alias every plugin exports: a function returning its manifest. */
#define IPP_MANIFEST_SYMBOL "ipp_plugin_manifest"

#ifdef __cplusplus
extern "C" {
#endif

/* A read-only byte range. */
typedef struct ipp_bytes_v1 {
  const void* data;
  size_t size;
} ipp_bytes_v1;

/* A value on the wire: a verified FlatBuffers ipp.fb.Value plus the side frames its arrays
 * refer to (frame k of the schema is frames[k - 1]). */
typedef struct ipp_payload_v1 {
  ipp_bytes_v1 root;
  const ipp_bytes_v1* frames;
  size_t frame_count;
} ipp_payload_v1;

typedef void (*ipp_payload_sink_v1)(void* sink, const ipp_payload_v1* payload);

/* What the runtime offers a running task. `self` is passed back to every function. */
typedef struct ipp_host_v1 {
  void* self;
  int64_t engine_id;
  /* Non-zero once the task has been asked to stop. */
  int (*cancelled)(void* self);
  /* Looks `name` up in the engine's namespace; calls deliver(sink, value) and returns 1 when
   * found, returns 0 when missing. */
  int (*ns_get)(void* self, const char* name, size_t name_size, void* sink,
                ipp_payload_sink_v1 deliver);
  /* Binds `name` to a copy of `value`. */
  void (*ns_set)(void* self, const char* name, size_t name_size, const ipp_payload_v1* value);
  /* Removes `name`; returns 1 when it was bound. */
  int (*ns_erase)(void* self, const char* name, size_t name_size);
  /* The task's result: the runtime copies what it needs before returning. */
  void (*set_result)(void* self, const ipp_payload_v1* value);
  /* The task's failure. `code` is an ipp::ErrorCode; `element` is the index within a map
   * block, or UINT64_MAX. */
  void (*set_error)(void* self, int32_t code, const char* type, size_t type_size,
                    const char* message, size_t message_size, uint64_t element);
} ipp_host_v1;

/* One call: `args` is a List of the task's arguments. */
typedef struct ipp_call_v1 {
  const ipp_host_v1* host;
  ipp_payload_v1 args;
} ipp_call_v1;

/* One block of a map: `args` is a List of sequences (Array, List or Range), one per parameter,
 * all at least `end` long; the task runs on elements [begin, end). When the task's
 * result_dtype is >= 0, results are written to out[i - begin] as that ipp.fb.DType; otherwise
 * `out` is NULL and the results come back through set_result as a List. */
typedef struct ipp_map_call_v1 {
  const ipp_host_v1* host;
  ipp_payload_v1 args;
  uint64_t begin;
  uint64_t end;
  void* out;
} ipp_map_call_v1;

typedef struct ipp_task_v1 {
  const char* name;      /* bare name, unique within the plugin */
  const char* signature; /* human-readable: "mul(int64, int64) -> int64" */
  const char* doc;       /* "" when none */
  int32_t arity;         /* arguments a caller passes (ipp::Context& is not counted) */
  int32_t result_dtype;  /* ipp.fb.DType of a numeric scalar result, or -1 */
  void (*invoke)(const ipp_call_v1* call);
  void (*invoke_map)(const ipp_map_call_v1* call);
} ipp_task_v1;

/* The manifest. abi_version comes first and never moves, so any runtime can read it. */
typedef struct ipp_manifest_v1 {
  uint32_t abi_version;
  const char* sdk_version;
  const char* plugin_name;
  const char* plugin_version;
  size_t task_count;
  const ipp_task_v1* tasks;
} ipp_manifest_v1;

typedef const ipp_manifest_v1* (*ipp_manifest_fn_v1)(void);

#ifdef __cplusplus
}
#endif
