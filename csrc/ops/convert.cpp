// float16 / bfloat16 <-> float32 for the kernels: F16C instructions where the CPU has them, exact
// bit manipulation elsewhere (and for bfloat16, whose conversions are shifts).
#include <immintrin.h>

#include "ops/kernel_support.h"

namespace hal::kernels {
namespace {

HAL_ALWAYS_INLINE float half_to_float(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  uint32_t bits;
  if (exponent == 0x1f) {
    bits = sign | 0x7f800000u | (mantissa << 13);  // inf, NaN
  } else if (exponent != 0) {
    bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
  } else if (mantissa == 0) {
    bits = sign;
  } else {  // subnormal: value = mantissa * 2^-24
    float value = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
    return sign ? -value : value;
  }
  return __builtin_bit_cast(float, bits);
}

HAL_ALWAYS_INLINE uint16_t float_to_half(float f) {
  uint32_t bits = __builtin_bit_cast(uint32_t, f);
  uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  uint32_t magnitude = bits & 0x7fffffffu;
  if (magnitude >= 0x7f800000u) {  // inf or NaN (kept quiet)
    return sign | 0x7c00u | (magnitude > 0x7f800000u ? 0x200u | ((magnitude >> 13) & 0x3ffu) : 0u);
  }
  if (magnitude >= 0x477ff000u) return sign | 0x7c00u;  // rounds beyond 65504: inf
  if (magnitude < 0x38800000u) {  // float16 subnormal or zero: round value * 2^24 to an integer
    float scaled = __builtin_bit_cast(float, magnitude) * 16777216.0f;
    return sign | static_cast<uint16_t>(__builtin_nearbyintf(scaled));  // current (nearest-even) rounding
  }
  uint32_t rounded = magnitude + 0xfffu + ((magnitude >> 13) & 1u);  // round to nearest even at bit 13
  return sign | static_cast<uint16_t>((rounded - 0x38000000u) >> 13);
}

HAL_ALWAYS_INLINE uint16_t float_to_bfloat16(float f) {
  uint32_t bits = __builtin_bit_cast(uint32_t, f);
  uint32_t rounded = bits + 0x7fffu + ((bits >> 16) & 1u);
  bool nan = (bits & 0x7fffffffu) > 0x7f800000u;
  return static_cast<uint16_t>(nan ? (bits >> 16) | 0x40u : rounded >> 16);
}

HAL_ALWAYS_INLINE void widen_bf16(const uint16_t* src, float* dst, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dst[i] = __builtin_bit_cast(float, static_cast<uint32_t>(src[i]) << 16);
}

HAL_ALWAYS_INLINE void narrow_bf16(const float* src, uint16_t* dst, int64_t n) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) dst[i] = float_to_bfloat16(src[i]);
}

HAL_VECTOR_TARGET void widen_vector(const uint16_t* src, float* dst, int64_t n, int32_t dtype) {
  if (dtype == HAL_BFLOAT16) return widen_bf16(src, dst, n);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  }
  for (; i < n; ++i) dst[i] = _cvtsh_ss(src[i]);
}

HAL_VECTOR_TARGET void narrow_vector(const float* src, uint16_t* dst, int64_t n, int32_t dtype) {
  if (dtype == HAL_BFLOAT16) return narrow_bf16(src, dst, n);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT));
  }
  for (; i < n; ++i) dst[i] = _cvtss_sh(src[i], _MM_FROUND_TO_NEAREST_INT);
}

void widen_baseline(const uint16_t* src, float* dst, int64_t n, int32_t dtype) {
  if (dtype == HAL_BFLOAT16) return widen_bf16(src, dst, n);
  for (int64_t i = 0; i < n; ++i) dst[i] = half_to_float(src[i]);
}

void narrow_baseline(const float* src, uint16_t* dst, int64_t n, int32_t dtype) {
  if (dtype == HAL_BFLOAT16) return narrow_bf16(src, dst, n);
  for (int64_t i = 0; i < n; ++i) dst[i] = float_to_half(src[i]);
}

}  // namespace

void widen(const uint16_t* src, float* dst, int64_t n, int32_t dtype) {
  (cpu_has_avx2_fma_f16c() ? widen_vector : widen_baseline)(src, dst, n, dtype);
}

void narrow(const float* src, uint16_t* dst, int64_t n, int32_t dtype) {
  (cpu_has_avx2_fma_f16c() ? narrow_vector : narrow_baseline)(src, dst, n, dtype);
}

}  // namespace hal::kernels
