// com.hal::FusedGelu (named apart from ONNX Gelu: onnx keys schemas by name across domains) and com.hal::SwiGLU, float32 / float16 / bfloat16 computed in float32.
//   FusedGelu(x; approximate="none"): 0.5 x (1 + erf(x / sqrt 2)); "tanh": 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
//   SwiGLU(x): the last axis (even) split into halves a, b: silu(a) * b = a / (1 + e^-a) * b,
//   as Ascend's npu_swiglu and LLaMA's feed-forward compute it.
#include <cstring>

#include "ops/checks.h"
#include "ops/kernel_support.h"

namespace hal::kernels {
namespace {

bool tanh_gelu(const hal_kernel_call* call) { return std::strcmp(hal_attr_string(call, "approximate", "none"), "tanh") == 0; }

int32_t gelu_infer(hal_kernel_call* call) {
  HAL_CHECK(check_arity(call, "FusedGelu", 1, 1));
  const char* approximate = hal_attr_string(call, "approximate", "none");
  if (std::strcmp(approximate, "none") != 0 && std::strcmp(approximate, "tanh") != 0) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "FusedGelu: approximate must be \"none\" (erf) or \"tanh\", got \"%s\"", approximate);
  }
  return same_as_input(call);
}

struct GeluErf {
  static constexpr int64_t kCost = 4;  // a transcendental per element (RowCost)
  HAL_ALWAYS_INLINE void operator()(const float* x, float* y, int64_t n) const {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) y[i] = 0.5f * x[i] * (1.0f + erf_f32(x[i] * 0.70710678118654752f));
  }
};

struct GeluTanh {
  static constexpr int64_t kCost = 4;  // a transcendental per element (RowCost)
  HAL_ALWAYS_INLINE void operator()(const float* x, float* y, int64_t n) const {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) {
      float v = x[i];
      y[i] = 0.5f * v * (1.0f + tanh_f32(0.79788456080286536f * (v + 0.044715f * v * v * v)));
    }
  }
};

int32_t gelu_compute(hal_kernel_call* call) {
  const hal_tensor& x = call->inputs[0];
  int64_t n = hal_numel(&x);
  if (tanh_gelu(call)) {
    run_elementwise(GeluTanh{}, x.data, call->outputs[0].data, n, x.dtype, call->num_threads);
  } else {
    run_elementwise(GeluErf{}, x.data, call->outputs[0].data, n, x.dtype, call->num_threads);
  }
  return HAL_OK;
}

int32_t swiglu_infer(hal_kernel_call* call) {
  HAL_CHECK(check_arity(call, "SwiGLU", 1, 1));
  HAL_CHECK(check_min_rank(call, "SwiGLU", 0, "x", 1));
  const hal_tensor& x = call->inputs[0];
  int64_t axis = hal_attr_int(call, "axis", -1);
  if (axis != -1 && axis != x.ndim - 1) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "SwiGLU: this kernel splits the last axis (axis=-1), got axis=%lld",
                    static_cast<long long>(axis));
  }
  if (x.shape[x.ndim - 1] % 2 != 0) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "SwiGLU: the last dimension must be even (two halves), got shape %s",
                    shape_string(x).c_str());
  }
  int64_t shape[HAL_MAX_DIMS];
  for (int32_t i = 0; i < x.ndim; ++i) shape[i] = x.shape[i];
  shape[x.ndim - 1] /= 2;
  hal_set_output(call, 0, x.dtype, x.ndim, shape);
  return HAL_OK;
}

struct SwiGluRow {
  static constexpr int64_t kCost = 4;  // a transcendental per element (RowCost)
  int64_t half;
  HAL_ALWAYS_INLINE void operator()(const float* x, float* y, int64_t) const {
    const float* b = x + half;
#pragma omp simd
    for (int64_t i = 0; i < half; ++i) y[i] = x[i] / (1.0f + exp_f32(-x[i])) * b[i];
  }
};

int32_t swiglu_compute(hal_kernel_call* call) {
  const hal_tensor& x = call->inputs[0];
  int64_t width = x.shape[x.ndim - 1];
  run_rows(SwiGluRow{width / 2}, RowShape{x.data, call->outputs[0].data, rows_of(x), width, width / 2, x.dtype},
           call->num_threads);
  return HAL_OK;
}

}  // namespace

HAL_REGISTER_KERNEL("com.hal", "FusedGelu", "cpu,ascend,kunlun", "float32,float16,bfloat16", gelu_infer, gelu_compute);
HAL_REGISTER_KERNEL("com.hal", "SwiGLU", "cpu,ascend,kunlun", "float32,float16,bfloat16", swiglu_infer, swiglu_compute);

}  // namespace hal::kernels
