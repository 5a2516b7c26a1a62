// com.hal::CachedAttention: scaled dot-product attention of a decode step's queries against a
// static KV cache, with grouped-query heads (what CANN's IncreFlashAttention and Paddle's XPU
// decoder attention compute).
//   CachedAttention(q [B, Hkv, R, D], k_cache [B, Hkv, Tmax, D], v_cache [B, Hkv, Tmax, D],
//                   bias [B, R or 1, length]; length, scale) -> out [B, Hkv, R, D] (q's dtype)
//   out[b, h, r] = sum_t softmax_t(q[b, h, r] . k[b, h, t] * scale + bias[b, r, t]) v[b, h, t], t < length
// R rows share a key/value head: the G query heads of a group times the step's S positions. Only
// the first `length` positions of the cache are read, where they lie (the cache is Tmax long,
// allocated once; numpy would copy its strided slice). The cache may be float32, float16 or
// bfloat16 (Ascend's FlashAttention takes float16 / bfloat16 only); sums are float32. A row whose
// keys are all masked (a padding token's query: bias -inf or very negative everywhere) is the
// mean of the values, as a softmax of equal scores is, never NaN.
#include <algorithm>
#include <cmath>
#include <vector>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "ops/checks.h"
#include "ops/kernel_support.h"

namespace hal::kernels {
namespace {

int32_t attention_infer(hal_kernel_call* call) {
  HAL_CHECK(check_arity(call, "CachedAttention", 4, 4));
  const hal_tensor &q = call->inputs[0], &k = call->inputs[1], &v = call->inputs[2], &bias = call->inputs[3];
  const char* names[] = {"q", "k_cache", "v_cache", "bias"};
  for (int32_t i = 0; i < 4; ++i) {
    if (!is_float_dtype(call->inputs[i].dtype)) {
      return hal_fail(call, HAL_ERR_DTYPE, "CachedAttention: %s must be float32, float16 or bfloat16, got %s", names[i],
                      hal_dtype_name(call->inputs[i].dtype));
    }
  }
  if (q.ndim != 4 || k.ndim != 4) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "CachedAttention: q and k_cache must be 4-D (B, Hkv, R, D), (B, Hkv, Tmax, D); got %s and %s",
                    shape_string(q).c_str(), shape_string(k).c_str());
  }
  if (k.shape[0] != q.shape[0] || k.shape[1] != q.shape[1] || k.shape[3] != q.shape[3]) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "CachedAttention: k_cache %s must match q %s in batch, heads and head size",
                    shape_string(k).c_str(), shape_string(q).c_str());
  }
  if (v.ndim != 4 || v.dtype != k.dtype) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "CachedAttention: v_cache must have k_cache's shape and dtype");
  }
  for (int32_t i = 0; i < 4; ++i) {
    if (v.shape[i] != k.shape[i]) {
      return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "CachedAttention: v_cache %s must have k_cache's shape %s",
                      shape_string(v).c_str(), shape_string(k).c_str());
    }
  }
  const int64_t length = hal_attr_int(call, "length", k.shape[2]);
  if (length < 1 || length > k.shape[2]) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "CachedAttention: length must be in [1, %lld] (the cache's positions), got %lld",
                    static_cast<long long>(k.shape[2]), static_cast<long long>(length));
  }
  if (bias.ndim != 3 || bias.shape[0] != q.shape[0] || (bias.shape[1] != q.shape[2] && bias.shape[1] != 1) || bias.shape[2] != length) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "CachedAttention: bias must have shape (%lld, %lld or 1, %lld), got %s",
                    static_cast<long long>(q.shape[0]), static_cast<long long>(q.shape[2]), static_cast<long long>(length),
                    shape_string(bias).c_str());
  }
  const double scale = hal_attr_float(call, "scale", 1.0 / std::sqrt(static_cast<double>(q.shape[3])));
  if (!std::isfinite(scale)) return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "CachedAttention: scale must be finite, got %g", scale);
  return same_as_input(call);
}

struct Problem {
  const float* q;     // float32 [B, Hkv, R, D]
  const void* k;      // [B, Hkv, Tmax, D], cache dtype
  const void* v;
  const float* bias;  // float32 [B, R or 1, length]
  float* out;         // float32 [B, Hkv, R, D]
  int32_t cache_dtype;
  int64_t heads, rows, tmax, d, length, bias_rows;
  float scale;
};

HAL_ALWAYS_INLINE float dot(const float* a, const float* b, int64_t n) {
  float total = 0.0f;
#pragma omp simd reduction(+ : total)
  for (int64_t i = 0; i < n; ++i) total += a[i] * b[i];
  return total;
}

#if defined(HAL_X86_DISPATCH)
// AVX2: the dot products of q with four keys at once, their four horizontal sums done together
// (one sum per dot product cost as much as the product itself at a head size of 64).
HAL_VECTOR_TARGET void dots4(const float* q, const float* keys, int64_t d, float* out) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  for (int64_t i = 0; i < d; i += 8) {
    const __m256 x = _mm256_loadu_ps(q + i);
    a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(keys + i), a0);
    a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(keys + d + i), a1);
    a2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(keys + 2 * d + i), a2);
    a3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(keys + 3 * d + i), a3);
  }
  const __m256 t = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  _mm_storeu_ps(out, _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1)));
}

// out[0..d) = sum_t weights[t] * values[t][0..d), 32 columns at a time in four registers (an out row
// loaded and stored per key made the sum as dear as the scores).
HAL_VECTOR_TARGET void weighted_values(const float* weights, const float* values, int64_t length, int64_t d, float* out) {
  for (int64_t i = 0; i < d; i += 32) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int64_t t = 0; t < length; ++t) {
      const __m256 w = _mm256_broadcast_ss(weights + t);
      const float* v = values + t * d + i;
      a0 = _mm256_fmadd_ps(w, _mm256_loadu_ps(v), a0);
      a1 = _mm256_fmadd_ps(w, _mm256_loadu_ps(v + 8), a1);
      a2 = _mm256_fmadd_ps(w, _mm256_loadu_ps(v + 16), a2);
      a3 = _mm256_fmadd_ps(w, _mm256_loadu_ps(v + 24), a3);
    }
    _mm256_storeu_ps(out + i, a0);
    _mm256_storeu_ps(out + i + 8, a1);
    _mm256_storeu_ps(out + i + 16, a2);
    _mm256_storeu_ps(out + i + 24, a3);
  }
}
#endif

// One (batch, head): every row of its queries against `length` keys. keys / values: float32 rows
// of the cache (the cache itself, or its widened copy in `widened`).
template <bool kVector>
HAL_ALWAYS_INLINE void attend(const Problem& p, int64_t b, int64_t h, float* scores, float* widened) {
  const int64_t head = b * p.heads + h;
  const float *keys, *values;
  if (p.cache_dtype == HAL_FLOAT32) {
    keys = static_cast<const float*>(p.k) + head * p.tmax * p.d;
    values = static_cast<const float*>(p.v) + head * p.tmax * p.d;
  } else {
    widen(static_cast<const uint16_t*>(p.k) + head * p.tmax * p.d, widened, p.length * p.d, p.cache_dtype);
    widen(static_cast<const uint16_t*>(p.v) + head * p.tmax * p.d, widened + p.length * p.d, p.length * p.d, p.cache_dtype);
    keys = widened;
    values = widened + p.length * p.d;
  }
  // every row's scores first, key after key: each key is read once for all the rows sharing it
  // (a group's query heads), from L1, instead of once per row from L2
  const float* queries = p.q + head * p.rows * p.d;
  int64_t t = 0;
#if defined(HAL_X86_DISPATCH)
  if constexpr (kVector) {
    if (p.d % 8 == 0) {
      for (; t + 4 <= p.length; t += 4) {
        for (int64_t r = 0; r < p.rows; ++r) dots4(queries + r * p.d, keys + t * p.d, p.d, scores + r * p.length + t);
      }
    }
  }
#endif
  for (; t < p.length; ++t) {
    for (int64_t r = 0; r < p.rows; ++r) scores[r * p.length + t] = dot(queries + r * p.d, keys + t * p.d, p.d);
  }
  for (int64_t r = 0; r < p.rows; ++r) {
    float* row = scores + r * p.length;
    const float* bias = p.bias + (b * p.bias_rows + (p.bias_rows == 1 ? 0 : r)) * p.length;
#pragma omp simd
    for (int64_t t = 0; t < p.length; ++t) row[t] = row[t] * p.scale + bias[t];
    float peak = -INFINITY;
#pragma omp simd reduction(max : peak)
    for (int64_t t = 0; t < p.length; ++t) peak = row[t] > peak ? row[t] : peak;
    float sum = 0.0f;
    if (std::isinf(peak) && peak < 0) {  // every key masked with -inf: equal scores
      std::fill(row, row + p.length, 1.0f);
      sum = static_cast<float>(p.length);
    } else {
#pragma omp simd reduction(+ : sum)
      for (int64_t t = 0; t < p.length; ++t) {
        row[t] = exp_f32(row[t] - peak);
        sum += row[t];
      }
    }
    float* out = p.out + (head * p.rows + r) * p.d;
    const float inverse = 1.0f / sum;
#pragma omp simd
    for (int64_t t = 0; t < p.length; ++t) row[t] *= inverse;
#if defined(HAL_X86_DISPATCH)
    if constexpr (kVector) {
      if (p.d % 32 == 0) {
        weighted_values(row, values, p.length, p.d, out);
        continue;
      }
    }
#endif
    std::fill(out, out + p.d, 0.0f);
    for (int64_t t = 0; t < p.length; ++t) {
      const float weight = row[t];
      const float* value = values + t * p.d;
#pragma omp simd
      for (int64_t i = 0; i < p.d; ++i) out[i] += weight * value[i];
    }
  }
}

HAL_VECTOR_TARGET void attend_vector(const Problem& p, int64_t b, int64_t h, float* scores, float* widened) {
  attend<true>(p, b, h, scores, widened);
}
void attend_baseline(const Problem& p, int64_t b, int64_t h, float* scores, float* widened) {
  attend<false>(p, b, h, scores, widened);
}

int32_t attention_compute(hal_kernel_call* call) {
  const hal_tensor &q = call->inputs[0], &k = call->inputs[1], &bias = call->inputs[3];
  FloatOperand qf(q), biasf(bias);
  Problem p;
  p.q = qf.data();
  p.k = k.data;
  p.v = call->inputs[2].data;
  p.bias = biasf.data();
  p.cache_dtype = k.dtype;
  p.heads = q.shape[1];
  p.rows = q.shape[2];
  p.d = q.shape[3];
  p.tmax = k.shape[2];
  p.length = hal_attr_int(call, "length", k.shape[2]);
  p.bias_rows = bias.shape[1];
  p.scale = static_cast<float>(hal_attr_float(call, "scale", 1.0 / std::sqrt(static_cast<double>(p.d))));
  const hal_tensor& y = call->outputs[0];
  std::vector<float> out32;
  if (y.dtype == HAL_FLOAT32) {
    p.out = static_cast<float*>(y.data);
  } else {
    out32.resize(static_cast<size_t>(hal_numel(&y)));
    p.out = out32.data();
  }
  const int64_t heads = q.shape[0] * p.heads;
  const int64_t per_head = p.rows * p.length + (p.cache_dtype == HAL_FLOAT32 ? 0 : 2 * p.length * p.d);
  auto attend_fn = cpu_has_avx2_fma_f16c() ? attend_vector : attend_baseline;
  // each (batch, head) reads its length x D keys and values once, from cache at a few FMAs a cycle:
  // counted as length x D elements of work, a decode step's few heads stay on one thread (waking
  // another cost more than the 4 heads x 160 positions of a 125M model's step take)
  parallel_for(heads, p.length * p.d, call->num_threads, [&](int64_t begin, int64_t end) {
    std::vector<float> scratch(static_cast<size_t>(per_head));
    for (int64_t i = begin; i < end; ++i) attend_fn(p, i / p.heads, i % p.heads, scratch.data(), scratch.data() + p.rows * p.length);
  });
  if (y.dtype != HAL_FLOAT32) narrow(p.out, static_cast<uint16_t*>(y.data), hal_numel(&y), y.dtype);
  return HAL_OK;
}

}  // namespace

HAL_REGISTER_KERNEL("com.hal", "CachedAttention", "cpu,ascend,kunlun", "float32,float16,bfloat16", attention_infer,
                    attention_compute);

}  // namespace hal::kernels
