// com.hal::RMSNorm and com.hal::LayerNorm over the last axis, float32 / float16 / bfloat16,
// computed in float32 (what Ascend's aclnnRmsNorm and Kunlun's rms_norm do for 16-bit inputs).
//   RMSNorm(x, weight; epsilon=1e-6):        y = x / sqrt(mean(x^2) + epsilon) * weight
//   LayerNorm(x, gamma[, beta]; epsilon=1e-5): y = (x - mean) / sqrt(var + epsilon) * gamma + beta
#include <cmath>

#include "ops/checks.h"
#include "ops/kernel_support.h"

namespace hal::kernels {
namespace {

int32_t check_norm(hal_kernel_call* call, const char* op, int32_t max_inputs) {
  HAL_CHECK(check_arity(call, op, 2, max_inputs));
  HAL_CHECK(check_min_rank(call, op, 0, "x", 1));
  const hal_tensor& x = call->inputs[0];
  const char* names[] = {"x", max_inputs == 2 ? "weight" : "gamma", "beta"};
  for (int32_t i = 1; i < call->num_inputs; ++i) {
    HAL_CHECK(check_same_dtype(call, op, i, names[i]));
    HAL_CHECK(check_vector(call, op, i, names[i], x.shape[x.ndim - 1]));
  }
  double epsilon = hal_attr_float(call, "epsilon", max_inputs == 2 ? 1e-6 : 1e-5);
  if (!(epsilon >= 0.0) || !std::isfinite(epsilon)) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "%s: epsilon must be a finite number >= 0, got %g", op, epsilon);
  }
  return same_as_input(call);
}

int32_t rms_norm_infer(hal_kernel_call* call) { return check_norm(call, "RMSNorm", 2); }
int32_t layer_norm_infer(hal_kernel_call* call) { return check_norm(call, "LayerNorm", 3); }

struct RmsNormRow {
  const float* weight;
  int64_t width;
  float epsilon;
  HAL_ALWAYS_INLINE void operator()(const float* x, float* y, int64_t) const {
    float sum = lane_sum(width, Square{x});
    float scale = 1.0f / std::sqrt(sum / static_cast<float>(width) + epsilon);
#pragma omp simd
    for (int64_t i = 0; i < width; ++i) y[i] = x[i] * scale * weight[i];
  }
};

struct LayerNormRow {
  static constexpr int64_t kCost = 2;  // three passes over each row: mean, variance, normalize (RowCost)
  const float* gamma;
  const float* beta;  // null: no shift
  int64_t width;
  float epsilon;
  HAL_ALWAYS_INLINE void operator()(const float* x, float* y, int64_t) const {
    float mean = lane_sum(width, Value{x}) / static_cast<float>(width);
    // two passes: the variance of deviations does not cancel catastrophically
    float squares = lane_sum(width, SquaredDeviation{x, mean});
    float scale = 1.0f / std::sqrt(squares / static_cast<float>(width) + epsilon);
    if (beta != nullptr) {
#pragma omp simd
      for (int64_t i = 0; i < width; ++i) y[i] = (x[i] - mean) * scale * gamma[i] + beta[i];
    } else {
#pragma omp simd
      for (int64_t i = 0; i < width; ++i) y[i] = (x[i] - mean) * scale * gamma[i];
    }
  }
};

RowShape rows_shape(const hal_kernel_call* call) {
  const hal_tensor& x = call->inputs[0];
  int64_t width = x.shape[x.ndim - 1];
  return RowShape{x.data, call->outputs[0].data, rows_of(x), width, width, x.dtype};
}

int32_t rms_norm_compute(hal_kernel_call* call) {
  FloatOperand weight(call->inputs[1]);
  RowShape s = rows_shape(call);
  float epsilon = static_cast<float>(hal_attr_float(call, "epsilon", 1e-6));
  run_rows(RmsNormRow{weight.data(), s.in_width, epsilon}, s, call->num_threads);
  return HAL_OK;
}

int32_t layer_norm_compute(hal_kernel_call* call) {
  FloatOperand gamma(call->inputs[1]);
  const bool shifted = call->num_inputs == 3;
  FloatOperand beta(call->inputs[shifted ? 2 : 1]);
  RowShape s = rows_shape(call);
  float epsilon = static_cast<float>(hal_attr_float(call, "epsilon", 1e-5));
  run_rows(LayerNormRow{gamma.data(), shifted ? beta.data() : nullptr, s.in_width, epsilon}, s, call->num_threads);
  return HAL_OK;
}

}  // namespace

HAL_REGISTER_KERNEL("com.hal", "RMSNorm", "cpu,ascend,kunlun", "float32,float16,bfloat16", rms_norm_infer, rms_norm_compute);
HAL_REGISTER_KERNEL("com.hal", "LayerNorm", "cpu,ascend,kunlun", "float32,float16,bfloat16", layer_norm_infer, layer_norm_compute);

}  // namespace hal::kernels
