// com.hal::RoPE, rotary position embedding, float32 / float16 / bfloat16 computed in float32.
//   RoPE(x [..., S, D], cos [S, D/2], sin [S, D/2]; interleaved=0)
// rotates each pair (x1, x2) of the head dimension by the angle of its position s:
//   (x1 cos - x2 sin, x2 cos + x1 sin).
// interleaved=0 pairs element i with i + D/2 (GPT-NeoX / LLaMA "rotate_half", torch_npu's
// npu_rotary_mul); interleaved=1 pairs 2i with 2i+1 (GPT-J, the original RoFormer).
#include "ops/checks.h"
#include "ops/kernel_support.h"

namespace hal::kernels {
namespace {

int32_t rope_infer(hal_kernel_call* call) {
  HAL_CHECK(check_arity(call, "RoPE", 3, 3));
  HAL_CHECK(check_min_rank(call, "RoPE", 0, "x", 2));
  const hal_tensor& x = call->inputs[0];
  int64_t positions = x.shape[x.ndim - 2], width = x.shape[x.ndim - 1];
  if (width % 2 != 0) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "RoPE: the last dimension of x (the head size) must be even, got shape %s",
                    shape_string(x).c_str());
  }
  const char* names[] = {"x", "cos", "sin"};
  for (int32_t i = 1; i < 3; ++i) {
    HAL_CHECK(check_same_dtype(call, "RoPE", i, names[i]));
    const hal_tensor& t = call->inputs[i];
    if (t.ndim != 2 || t.shape[0] != positions || t.shape[1] != width / 2) {
      return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "RoPE: %s must have shape (%lld, %lld) for x of shape %s, got %s", names[i],
                      static_cast<long long>(positions), static_cast<long long>(width / 2), shape_string(x).c_str(),
                      shape_string(t).c_str());
    }
  }
  int64_t interleaved = hal_attr_int(call, "interleaved", 0);
  if (interleaved != 0 && interleaved != 1) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "RoPE: interleaved must be 0 or 1, got %lld", static_cast<long long>(interleaved));
  }
  return same_as_input(call);
}

template <bool kInterleaved>
struct RopeRow {
  const float* cos;
  const float* sin;
  int64_t positions, half;
  HAL_ALWAYS_INLINE void operator()(const float* x, float* y, int64_t row) const {
    const float* c = cos + (row % positions) * half;
    const float* s = sin + (row % positions) * half;
    if (kInterleaved) {
#pragma omp simd
      for (int64_t i = 0; i < half; ++i) {
        float a = x[2 * i], b = x[2 * i + 1];
        y[2 * i] = a * c[i] - b * s[i];
        y[2 * i + 1] = b * c[i] + a * s[i];
      }
    } else {
#pragma omp simd
      for (int64_t i = 0; i < half; ++i) {
        float a = x[i], b = x[half + i];
        y[i] = a * c[i] - b * s[i];
        y[half + i] = b * c[i] + a * s[i];
      }
    }
  }
};

int32_t rope_compute(hal_kernel_call* call) {
  const hal_tensor& x = call->inputs[0];
  FloatOperand cos(call->inputs[1]), sin(call->inputs[2]);
  int64_t positions = x.shape[x.ndim - 2], width = x.shape[x.ndim - 1];
  RowShape s{x.data, call->outputs[0].data, rows_of(x), width, width, x.dtype};
  if (positions == 0 || s.rows == 0) return HAL_OK;
  if (hal_attr_int(call, "interleaved", 0)) {
    run_rows(RopeRow<true>{cos.data(), sin.data(), positions, width / 2}, s, call->num_threads);
  } else {
    run_rows(RopeRow<false>{cos.data(), sin.data(), positions, width / 2}, s, call->num_threads);
  }
  return HAL_OK;
}

}  // namespace

HAL_REGISTER_KERNEL("com.hal", "RoPE", "cpu,ascend,kunlun", "float32,float16,bfloat16", rope_infer, rope_compute);

}  // namespace hal::kernels
