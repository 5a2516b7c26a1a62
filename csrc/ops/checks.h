// Input checks shared by the built-in kernels' infer functions: each returns HAL_OK or fails the
// call with a message that says what was expected.
#pragma once

#include <string>

#include "hal/kernel.h"

namespace hal::kernels {

inline std::string shape_string(const hal_tensor& t) {
  std::string s = "(";
  for (int32_t i = 0; i < t.ndim; ++i) s += (i ? ", " : "") + std::to_string(t.shape[i]);
  return s + (t.ndim == 1 ? ",)" : ")");
}

// The op takes between `low` and `high` inputs.
inline int32_t check_arity(hal_kernel_call* call, const char* op, int32_t low, int32_t high) {
  if (call->num_inputs < low || call->num_inputs > high) {
    if (low == high) return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "%s takes %d inputs, got %d", op, low, call->num_inputs);
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "%s takes %d to %d inputs, got %d", op, low, high, call->num_inputs);
  }
  return HAL_OK;
}

// Input i has the dtype of input 0.
inline int32_t check_same_dtype(hal_kernel_call* call, const char* op, int32_t i, const char* name) {
  const hal_tensor& t = call->inputs[i];
  if (t.dtype != call->inputs[0].dtype) {
    return hal_fail(call, HAL_ERR_DTYPE, "%s: %s must have the dtype of the input (%s), got %s", op, name,
                    hal_dtype_name(call->inputs[0].dtype), hal_dtype_name(t.dtype));
  }
  return HAL_OK;
}

inline int32_t check_min_rank(hal_kernel_call* call, const char* op, int32_t i, const char* name, int32_t rank) {
  const hal_tensor& t = call->inputs[i];
  if (t.ndim < rank) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "%s: %s must have at least %d dimension(s), got shape %s", op, name,
                    rank, shape_string(t).c_str());
  }
  return HAL_OK;
}

// Input i is 1-D of `size` elements.
inline int32_t check_vector(hal_kernel_call* call, const char* op, int32_t i, const char* name, int64_t size) {
  const hal_tensor& t = call->inputs[i];
  if (t.ndim != 1 || t.shape[0] != size) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "%s: %s must have shape (%lld,) to match the input's last dimension, got %s",
                    op, name, static_cast<long long>(size), shape_string(t).c_str());
  }
  return HAL_OK;
}

inline int64_t rows_of(const hal_tensor& t) {
  int64_t rows = 1;
  for (int32_t i = 0; i + 1 < t.ndim; ++i) rows *= t.shape[i];
  return rows;
}

// Output 0 with the input's dtype and shape.
inline int32_t same_as_input(hal_kernel_call* call) {
  hal_set_output(call, 0, call->inputs[0].dtype, call->inputs[0].ndim, call->inputs[0].shape);
  return HAL_OK;
}

#define HAL_CHECK(expr)                       \
  do {                                        \
    int32_t hal_check_status_ = (expr);       \
    if (hal_check_status_ != HAL_OK) return hal_check_status_; \
  } while (0)

}  // namespace hal::kernels
