// com.hal::FusedSoftmax (named apart from ONNX Softmax: onnx keys schemas by name across domains), over the last axis, numerically stable (the row maximum is subtracted before
// exp), float32 / float16 / bfloat16 computed in float32. A row holding NaN, or +inf, is NaN
// throughout, as numpy's and torch's formulations give.
#include "ops/checks.h"
#include "ops/kernel_support.h"

namespace hal::kernels {
namespace {

int32_t softmax_infer(hal_kernel_call* call) {
  HAL_CHECK(check_arity(call, "FusedSoftmax", 1, 1));
  HAL_CHECK(check_min_rank(call, "FusedSoftmax", 0, "x", 1));
  int64_t axis = hal_attr_int(call, "axis", -1);
  int32_t rank = call->inputs[0].ndim;
  if (axis != -1 && axis != rank - 1) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT,
                    "FusedSoftmax: this kernel normalizes the last axis (axis=-1 or %d), got axis=%lld; transpose the input first",
                    rank - 1, static_cast<long long>(axis));
  }
  return same_as_input(call);
}

struct SoftmaxRow {
  static constexpr int64_t kCost = 4;  // a transcendental per element (RowCost)
  int64_t width;
  HAL_ALWAYS_INLINE void operator()(const float* x, float* y, int64_t) const {
    float peak = -__builtin_inff();
#pragma omp simd reduction(max : peak)
    for (int64_t i = 0; i < width; ++i) peak = x[i] > peak ? x[i] : peak;
    float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
    for (int64_t i = 0; i < width; ++i) {
      float e = exp_f32(x[i] - peak);
      y[i] = e;
      sum += e;
    }
    float inverse = 1.0f / sum;
#pragma omp simd
    for (int64_t i = 0; i < width; ++i) y[i] *= inverse;
  }
};

int32_t softmax_compute(hal_kernel_call* call) {
  const hal_tensor& x = call->inputs[0];
  int64_t width = x.shape[x.ndim - 1];
  run_rows(SoftmaxRow{width}, RowShape{x.data, call->outputs[0].data, rows_of(x), width, width, x.dtype}, call->num_threads);
  return HAL_OK;
}

}  // namespace

HAL_REGISTER_KERNEL("com.hal", "FusedSoftmax", "cpu,ascend,kunlun", "float32,float16,bfloat16", softmax_infer, softmax_compute);

}  // namespace hal::kernels
