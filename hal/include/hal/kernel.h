/* hal/kernel.h: the interface between hal and a kernel library (hal._C's own kernels, or a user's
 * shared library loaded with hal.ops.load_library).
 *
 * Only plain C crosses the boundary (POD structs, function pointers, C strings), so a library
 * compiled separately, by another compiler or against another C++ standard library, registers
 * into the same registry as hal._C. A library exports one function,
 *
 *     int32_t hal_register_kernels(const hal_registrar* registrar);
 *
 * which hal calls once after dlopen; from C++, HAL_REGISTER_KERNEL(...) at namespace scope is all
 * it takes (the macro collects the kernels and this header defines the exported function).
 *
 * A kernel is two functions over a hal_kernel_call:
 *   infer(call):   checks the inputs (dtypes, ranks, shapes) and attributes, and fills
 *                  call->num_outputs and each output's dtype, ndim and shape;
 *   compute(call): reads the inputs and writes the outputs, whose memory hal allocated from what
 *                  infer said; called only after infer succeeded for the same inputs.
 * Both return HAL_OK, or a hal_status with a message written into call->message (see hal_fail).
 * Tensors are dense and row-major (hal passes only C-contiguous buffers). compute should use at
 * most call->num_threads threads (hal.ops.set_num_threads, HAL_NUM_THREADS).
 */
#ifndef HAL_KERNEL_H_
#define HAL_KERNEL_H_

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HAL_KERNEL_ABI_VERSION 1
#define HAL_MAX_DIMS 8
#define HAL_MAX_OUTPUTS 4

/* Element types; the names hal uses are hal_dtype_name's. */
typedef enum hal_dtype {
  HAL_BOOL = 0,
  HAL_INT8 = 1,
  HAL_UINT8 = 2,
  HAL_INT16 = 3,
  HAL_UINT16 = 4,
  HAL_INT32 = 5,
  HAL_UINT32 = 6,
  HAL_INT64 = 7,
  HAL_UINT64 = 8,
  HAL_FLOAT16 = 9,
  HAL_BFLOAT16 = 10,
  HAL_FLOAT32 = 11,
  HAL_FLOAT64 = 12,
  HAL_NUM_DTYPES = 13
} hal_dtype;

typedef enum hal_status {
  HAL_OK = 0,
  HAL_ERR_INVALID_ARGUMENT = 1, /* wrong rank, shape or attribute: hal.InvalidArgumentError */
  HAL_ERR_DTYPE = 2,            /* a dtype the kernel does not take: hal.UnsupportedDTypeError */
  HAL_ERR_INTERNAL = 3          /* anything else: hal.DeviceError */
} hal_status;

typedef struct hal_tensor {
  void* data;
  int64_t shape[HAL_MAX_DIMS];
  int32_t ndim;
  int32_t dtype; /* hal_dtype */
} hal_tensor;

typedef enum hal_attr_kind { HAL_ATTR_INT = 0, HAL_ATTR_FLOAT = 1, HAL_ATTR_STRING = 2 } hal_attr_kind;

typedef struct hal_attr {
  const char* name;
  int32_t kind; /* hal_attr_kind */
  int64_t i;
  double f;
  const char* s;
} hal_attr;

typedef struct hal_kernel_call {
  const hal_tensor* inputs;
  int32_t num_inputs;
  hal_tensor* outputs; /* HAL_MAX_OUTPUTS entries */
  int32_t num_outputs;
  const hal_attr* attrs;
  int32_t num_attrs;
  int32_t num_threads;
  char* message; /* for a failure's explanation */
  size_t message_size;
} hal_kernel_call;

typedef int32_t (*hal_kernel_fn)(hal_kernel_call* call);

typedef struct hal_kernel_def {
  uint32_t abi_version; /* HAL_KERNEL_ABI_VERSION */
  const char* domain;   /* ONNX domain, e.g. "com.example" */
  const char* op;       /* ONNX op type, e.g. "MyScale" */
  const char* backends; /* comma-separated device kinds: "cpu,ascend" */
  const char* dtypes;   /* comma-separated dtypes of the first input: "float32,float16" */
  hal_kernel_fn infer;
  hal_kernel_fn compute;
  const char* source; /* where the kernel is written (__FILE__) */
} hal_kernel_def;

typedef struct hal_registrar {
  uint32_t abi_version;
  void* context;
  /* HAL_OK, or a status with the reason in message (a duplicate, an unknown dtype...). */
  int32_t (*register_kernel)(void* context, const hal_kernel_def* def, char* message, size_t message_size);
} hal_registrar;

/* ---- helpers for kernel authors ------------------------------------------------------------ */

static inline const char* hal_dtype_name(int32_t dtype) {
  static const char* const names[HAL_NUM_DTYPES] = {"bool",   "int8",    "uint8",  "int16",   "uint16",
                                                    "int32",  "uint32",  "int64",  "uint64",  "float16",
                                                    "bfloat16", "float32", "float64"};
  return dtype >= 0 && dtype < HAL_NUM_DTYPES ? names[dtype] : "unknown";
}

static inline int64_t hal_numel(const hal_tensor* t) {
  int64_t n = 1;
  for (int32_t i = 0; i < t->ndim; ++i) n *= t->shape[i];
  return n;
}

/* Writes a printf-style message into call->message and returns status. */
static inline int32_t hal_fail(hal_kernel_call* call, int32_t status, const char* format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;
static inline int32_t hal_fail(hal_kernel_call* call, int32_t status, const char* format, ...) {
  if (call->message != NULL && call->message_size > 0) {
    va_list args;
    va_start(args, format);
    vsnprintf(call->message, call->message_size, format, args);
    va_end(args);
  }
  return status;
}

static inline const hal_attr* hal_find_attr(const hal_kernel_call* call, const char* name) {
  for (int32_t i = 0; i < call->num_attrs; ++i) {
    if (strcmp(call->attrs[i].name, name) == 0) return &call->attrs[i];
  }
  return NULL;
}

static inline double hal_attr_float(const hal_kernel_call* call, const char* name, double fallback) {
  const hal_attr* a = hal_find_attr(call, name);
  if (a == NULL) return fallback;
  return a->kind == HAL_ATTR_FLOAT ? a->f : a->kind == HAL_ATTR_INT ? (double)a->i : fallback;
}

static inline int64_t hal_attr_int(const hal_kernel_call* call, const char* name, int64_t fallback) {
  const hal_attr* a = hal_find_attr(call, name);
  return a != NULL && a->kind == HAL_ATTR_INT ? a->i : fallback;
}

static inline const char* hal_attr_string(const hal_kernel_call* call, const char* name, const char* fallback) {
  const hal_attr* a = hal_find_attr(call, name);
  return a != NULL && a->kind == HAL_ATTR_STRING ? a->s : fallback;
}

/* Sets output i to dtype and the given shape. */
static inline void hal_set_output(hal_kernel_call* call, int32_t i, int32_t dtype, int32_t ndim, const int64_t* shape) {
  call->outputs[i].dtype = dtype;
  call->outputs[i].ndim = ndim;
  for (int32_t d = 0; d < ndim; ++d) call->outputs[i].shape[d] = shape[d];
  if (call->num_outputs < i + 1) call->num_outputs = i + 1;
}

#ifdef __cplusplus
}  /* extern "C" */

/* ---- C++: HAL_REGISTER_KERNEL ---------------------------------------------------------------- */
/* Each use adds a kernel to this library's list (a linked list of static nodes, so registration
 * allocates nothing and needs no C++ runtime support from hal); hal_register_kernels below hands
 * the list to hal. The list is private to each shared library (hidden visibility). */
namespace hal_kernel_detail {
struct Node {
  hal_kernel_def def;
  Node* next;
};
__attribute__((visibility("hidden"))) inline Node*& head() {
  static Node* first = nullptr;
  return first;
}
struct Registration {
  Node node;
  explicit Registration(const hal_kernel_def& def) : node{def, nullptr} {
    Node** tail = &head();
    while (*tail != nullptr) tail = &(*tail)->next;
    *tail = &node;  // kept in the order of registration
  }
};
}  // namespace hal_kernel_detail

#define HAL_KERNEL_CONCAT_(a, b) a##b
#define HAL_KERNEL_CONCAT(a, b) HAL_KERNEL_CONCAT_(a, b)

/* HAL_REGISTER_KERNEL("com.example", "MyScale", "cpu,ascend", "float32,float16", infer, compute) */
#define HAL_REGISTER_KERNEL(domain, op, backends, dtypes, infer, compute)                              \
  static ::hal_kernel_detail::Registration HAL_KERNEL_CONCAT(hal_kernel_registration_, __COUNTER__)( \
      hal_kernel_def{HAL_KERNEL_ABI_VERSION, domain, op, backends, dtypes, infer, compute, __FILE__})

/* The library's entry point. Weak, so that every translation unit of a library may include this
 * header; default visibility, so that hal finds it with dlsym. */
extern "C" __attribute__((weak, visibility("default"))) int32_t hal_register_kernels(const hal_registrar* registrar) {
  if (registrar == nullptr || registrar->abi_version != HAL_KERNEL_ABI_VERSION) return HAL_ERR_INTERNAL;
  char message[512];
  for (hal_kernel_detail::Node* n = hal_kernel_detail::head(); n != nullptr; n = n->next) {
    message[0] = '\0';
    int32_t status = registrar->register_kernel(registrar->context, &n->def, message, sizeof(message));
    if (status != HAL_OK) return status;
  }
  return HAL_OK;
}
#endif /* __cplusplus */

#endif /* HAL_KERNEL_H_ */
