// com.hal::Linear: a fully connected layer for the few rows of a decode step, the weights read in
// place, once, at memory speed.
//   Linear(x [..., K], w [K, N][, bias [N]]) -> y [..., N], x's dtype
//   Linear(x, w int8 [K, N][, bias [N]], w_scale [N]) -> y: weight-only int8, one scale per column
//   y[m, n] = sum_k x[m, k] * w[k, n] (* w_scale[n]) (+ bias[n]), summed in float32
// x and bias are float32, float16 or bfloat16; w may be any of the three independently (a chip's
// float16 weights under a float32 model: Ascend's Cube under allow_fp32_to_fp16), widened to
// float32 in registers or L1 as it is read, or int8 levels with a float32 scale per output channel
// (weight-only quantization, as CANN's WeightQuantBatchMatmul takes them): the activations stay
// float, the weights cost one byte each to read, and the scale is applied once to each sum.
//
// Decoding one token multiplies a row of activations by every weight of the model once: the
// weights' bytes, not the arithmetic, set the time. BLAS's GEMV does that too, but through its
// own thread pool, which sleeps between a decode step's many small calls; here w is swept along its
// rows, front to back, by the kernels' pool (whose workers spin between calls), each thread over
// its own range of K into a float32 sum of every column (rows x N x 4 bytes, in L1 or L2), and the
// threads' sums are added at the end. Going down column blocks instead would touch a page per row
// of w (see QuantizedMatMul's in-place sweep, which this follows).
//
// Rows are summed kRowsPerSweep at a time: a prefill-sized x costs one sweep of w per four rows,
// so GEMM-sized problems belong to a BLAS GEMM (hal.llm runs prefill's matmuls so).
#include <algorithm>
#include <cstring>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "ops/checks.h"
#include "ops/kernel_support.h"

namespace hal::kernels {
namespace {

constexpr int64_t kRowsPerSweep = 4;   // rows of x a sweep sums: their x[k] stay in registers
constexpr int64_t kStepRows = 8;       // rows of w per step of a sweep: eight loads per column, one sum update
constexpr int64_t kWidenColumns = 1024;  // float16 / bfloat16 w: columns widened into L1 per step
// A thread per this many bytes of w: below it a second thread's wake-up and reduction cost more
// than its half of the sweep (as for QuantizedMatMul's in-place sweep).
constexpr int64_t kBytesPerThread = 256 << 10;

int64_t itemsize(int32_t dtype) { return dtype == HAL_FLOAT32 ? 4 : dtype == HAL_INT8 ? 1 : 2; }

int32_t linear_infer(hal_kernel_call* call) {
  HAL_CHECK(check_arity(call, "Linear", 2, 4));
  HAL_CHECK(check_min_rank(call, "Linear", 0, "x", 1));
  const hal_tensor &x = call->inputs[0], &w = call->inputs[1];
  const bool quantized = w.dtype == HAL_INT8;
  if (quantized ? call->num_inputs < 3 : call->num_inputs > 3) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT,
                    quantized ? "Linear: int8 weights need their scales: Linear(x, w, [bias,] w_scale), one float32 per column"
                              : "Linear: float weights take Linear(x, w[, bias]); w_scale is for int8 weights");
  }
  const bool has_bias = call->num_inputs == (quantized ? 4 : 3);
  const char* names[] = {"x", "w", has_bias ? "bias" : "w_scale", "w_scale"};
  for (int32_t i = 0; i < call->num_inputs; ++i) {
    if (i == 1 && quantized) continue;
    if (!is_float_dtype(call->inputs[i].dtype)) {
      return hal_fail(call, HAL_ERR_DTYPE, "Linear: %s must be float32, float16 or bfloat16%s, got %s", names[i],
                      i == 1 ? " (or int8 with scales)" : "", hal_dtype_name(call->inputs[i].dtype));
    }
  }
  const int64_t k = x.shape[x.ndim - 1];
  if (w.ndim != 2 || w.shape[0] != k) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "Linear: w must have shape (K, N) with K = %lld (x's last dimension), got %s",
                    static_cast<long long>(k), shape_string(w).c_str());
  }
  for (int32_t i = 2; i < call->num_inputs; ++i) HAL_CHECK(check_vector(call, "Linear", i, names[i], w.shape[1]));
  if (quantized && call->inputs[call->num_inputs - 1].dtype != HAL_FLOAT32) {
    return hal_fail(call, HAL_ERR_DTYPE, "Linear: w_scale must be float32, got %s", hal_dtype_name(call->inputs[call->num_inputs - 1].dtype));
  }
  int64_t shape[HAL_MAX_DIMS];
  for (int32_t i = 0; i + 1 < x.ndim; ++i) shape[i] = x.shape[i];
  shape[x.ndim - 1] = w.shape[1];
  hal_set_output(call, 0, x.dtype, x.ndim, shape);
  return HAL_OK;
}

struct Sweep {
  const float* x;  // float32 rows of x, K apart
  const void* w;
  int32_t w_dtype;
  int64_t rows, k, n;
};

// sums[r][c] += x[r][k0 + j] * w[k0 + j][c] for the J rows of w from k0, columns [c0, c1); wj are
// those rows (float32), wj[j][i] being column c0 + i.
template <int M, int J, class T>
HAL_ALWAYS_INLINE void step(const Sweep& s, const T* const* wj, int64_t k0, int64_t c0, int64_t c1, float* sums) {
  float a[M][J];
#pragma GCC unroll 4
  for (int r = 0; r < M; ++r) {
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) a[r][j] = s.x[r * s.k + k0 + j];
  }
#pragma omp simd
  for (int64_t c = c0; c < c1; ++c) {
    float b[J];
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) b[j] = static_cast<float>(wj[j][c - c0]);
#pragma GCC unroll 4
    for (int r = 0; r < M; ++r) {
      float total = sums[r * s.n + c];
#pragma GCC unroll 8
      for (int j = 0; j < J; ++j) total += a[r][j] * b[j];
      sums[r * s.n + c] = total;
    }
  }
}

// sums[r][0..n) += the products of w's rows [k0, k1) for the M rows of x.
// sums[r][0..n) += the products of rows [k0, k1) of w, whose elements are T (float32, or int8 levels).
template <int M, class T>
HAL_ALWAYS_INLINE void sweep_rows(const Sweep& s, int64_t k0, int64_t k1, float* sums) {
  const T* w = static_cast<const T*>(s.w);
  int64_t k = k0;
  for (; k + kStepRows <= k1; k += kStepRows) {
    const T* wj[kStepRows];
    for (int j = 0; j < kStepRows; ++j) wj[j] = w + (k + j) * s.n;
    step<M, kStepRows>(s, wj, k, 0, s.n, sums);
  }
  for (; k < k1; ++k) {
    const T* w1 = w + k * s.n;
    step<M, 1>(s, &w1, k, 0, s.n, sums);
  }
}

template <int M>
HAL_ALWAYS_INLINE void sweep_range(const Sweep& s, int64_t k0, int64_t k1, float* sums, float* widened) {
  if (s.w_dtype == HAL_FLOAT32) return sweep_rows<M, float>(s, k0, k1, sums);
  if (s.w_dtype == HAL_INT8) return sweep_rows<M, int8_t>(s, k0, k1, sums);
  // float16 / bfloat16: each step's rows are widened into L1 a column block at a time, then summed;
  // the sweep still goes along w's rows (a column block down all of K would touch a page per row).
  const uint16_t* w = static_cast<const uint16_t*>(s.w);
  for (int64_t k = k0; k < k1; k += kStepRows) {
    const int rows = static_cast<int>(std::min(kStepRows, k1 - k));
    for (int64_t c0 = 0; c0 < s.n; c0 += kWidenColumns) {
      const int64_t width = std::min(kWidenColumns, s.n - c0);
      const float* wj[kStepRows];
      for (int j = 0; j < rows; ++j) {
        widen(w + (k + j) * s.n + c0, widened + j * kWidenColumns, width, s.w_dtype);
        wj[j] = widened + j * kWidenColumns;
      }
      if (rows == kStepRows) {
        step<M, kStepRows>(s, wj, k, c0, c0 + width, sums);
      } else {
        for (int j = 0; j < rows; ++j) step<M, 1>(s, wj + j, k + j, c0, c0 + width, sums);
      }
    }
  }
}

#if defined(HAL_X86_DISPATCH)
// AVX2 + F16C: 16-bit and int8 weights widened to float32 in registers as they are read, so that a
// weight costs its own bytes of memory traffic and no pass through L1. A Loader reads 8 (load8) or
// 1 (load1) weights as float32.
template <bool kBf16>
struct HalfLoader {
  using T = uint16_t;
  HAL_VECTOR_TARGET static HAL_ALWAYS_INLINE __m256 load8(const uint16_t* p) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    if constexpr (kBf16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);  // vcvtph2ps
  }
  HAL_VECTOR_TARGET static HAL_ALWAYS_INLINE float load1(const uint16_t* p) {
    if constexpr (kBf16) return __builtin_bit_cast(float, static_cast<uint32_t>(*p) << 16);
    return _cvtsh_ss(*p);
  }
};

struct Int8Loader {  // levels; the column scales are applied to the sums at the end
  using T = int8_t;
  HAL_VECTOR_TARGET static HAL_ALWAYS_INLINE __m256 load8(const int8_t* p) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));  // vpmovsxbd, vcvtdq2ps
  }
  HAL_VECTOR_TARGET static HAL_ALWAYS_INLINE float load1(const int8_t* p) { return static_cast<float>(*p); }
};

// total + sum_j x[j] * b[j], in up to four independent chains of multiply-adds (one chain of J
// dependent FMAs made the widening loads wait on FMA latency).
template <int J>
HAL_VECTOR_TARGET HAL_ALWAYS_INLINE __m256 add_products(__m256 total, const __m256* x, const __m256* b) {
  constexpr int kChains = J < 4 ? J : 4;
  __m256 chain[kChains];
  chain[0] = _mm256_fmadd_ps(x[0], b[0], total);
#pragma GCC unroll 4
  for (int j = 1; j < kChains; ++j) chain[j] = _mm256_mul_ps(x[j], b[j]);
#pragma GCC unroll 8
  for (int j = kChains; j < J; ++j) chain[j % kChains] = _mm256_fmadd_ps(x[j], b[j], chain[j % kChains]);
  if constexpr (kChains == 4) return _mm256_add_ps(_mm256_add_ps(chain[0], chain[1]), _mm256_add_ps(chain[2], chain[3]));
  if constexpr (kChains == 2) return _mm256_add_ps(chain[0], chain[1]);
  return chain[0];
}

// sums[r][0..n) += x[r][k + j] * w[k + j][0..n) for the J rows of w from k. x's values are
// broadcast once per step, not once per column block.
template <int M, int J, class Loader>
HAL_VECTOR_TARGET HAL_ALWAYS_INLINE void step_widened(const Sweep& s, const typename Loader::T* w, int64_t k, float* sums) {
  const typename Loader::T* rows[J];
  for (int j = 0; j < J; ++j) rows[j] = w + (k + j) * s.n;
  __m256 xs[M][J];
#pragma GCC unroll 4
  for (int r = 0; r < M; ++r) {
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) xs[r][j] = _mm256_set1_ps(s.x[r * s.k + k + j]);
  }
  const int64_t full = s.n / 8 * 8;
  for (int64_t c = 0; c < full; c += 8) {
    __m256 b[J];
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) b[j] = Loader::load8(rows[j] + c);
#pragma GCC unroll 4
    for (int r = 0; r < M; ++r) {
      _mm256_storeu_ps(sums + r * s.n + c, add_products<J>(_mm256_loadu_ps(sums + r * s.n + c), xs[r], b));
    }
  }
  for (int64_t c = full; c < s.n; ++c) {
    for (int r = 0; r < M; ++r) {
      float total = sums[r * s.n + c];
      for (int j = 0; j < J; ++j) total += s.x[r * s.k + k + j] * Loader::load1(rows[j] + c);
      sums[r * s.n + c] = total;
    }
  }
}

template <int M, class Loader>
HAL_VECTOR_TARGET void sweep_widened(const Sweep& s, int64_t k0, int64_t k1, float* sums) {
  const auto* w = static_cast<const typename Loader::T*>(s.w);
  int64_t k = k0;
  for (; k + kStepRows <= k1; k += kStepRows) step_widened<M, kStepRows, Loader>(s, w, k, sums);
  for (; k < k1; ++k) step_widened<M, 1, Loader>(s, w, k, sums);
}
#endif

template <int M>
HAL_VECTOR_TARGET void sweep_vector(const Sweep& s, int64_t k0, int64_t k1, float* sums, float* widened) {
#if defined(HAL_X86_DISPATCH)
  if (s.w_dtype == HAL_FLOAT16) return sweep_widened<M, HalfLoader<false>>(s, k0, k1, sums);
  if (s.w_dtype == HAL_BFLOAT16) return sweep_widened<M, HalfLoader<true>>(s, k0, k1, sums);
  if (s.w_dtype == HAL_INT8) return sweep_widened<M, Int8Loader>(s, k0, k1, sums);
#endif
  sweep_range<M>(s, k0, k1, sums, widened);
}

template <int M>
void sweep_baseline(const Sweep& s, int64_t k0, int64_t k1, float* sums, float* widened) {
  sweep_range<M>(s, k0, k1, sums, widened);
}

using SweepFn = void (*)(const Sweep&, int64_t, int64_t, float*, float*);
constexpr SweepFn kVector[kRowsPerSweep + 1] = {nullptr, sweep_vector<1>, sweep_vector<2>, sweep_vector<3>, sweep_vector<4>};
constexpr SweepFn kBaseline[kRowsPerSweep + 1] = {nullptr, sweep_baseline<1>, sweep_baseline<2>, sweep_baseline<3>,
                                                  sweep_baseline<4>};

ScratchBuffer<float>& scratch() {
  static thread_local ScratchBuffer<float> s;
  return s;
}

int32_t linear_compute(hal_kernel_call* call) {
  const hal_tensor &x = call->inputs[0], &w = call->inputs[1], &y = call->outputs[0];
  const int64_t k = w.shape[0], n = w.shape[1], rows = rows_of(x);
  FloatOperand xf(x);
  const bool quantized = w.dtype == HAL_INT8;
  const bool has_bias = call->num_inputs == (quantized ? 4 : 3);
  FloatOperand bias(call->inputs[has_bias ? 2 : 0]);
  const float* w_scale = quantized ? static_cast<const float*>(call->inputs[call->num_inputs - 1].data) : nullptr;
  const int32_t threads = static_cast<int32_t>(
      std::clamp<int64_t>(k * n * itemsize(w.dtype) / kBytesPerThread, 1, std::max<int32_t>(call->num_threads, 1)));
  const int64_t per_thread = kRowsPerSweep * n + kStepRows * kWidenColumns;  // sums, then widened rows of w
  float* buffers = scratch().get(threads * per_thread + kRowsPerSweep * n);
  if (buffers == nullptr) return hal_fail(call, HAL_ERR_INTERNAL, "Linear: out of memory for %d threads' sums", threads);
  float* result = buffers + threads * per_thread;  // float32 rows of y before narrowing
  const SweepFn* sweeps = cpu_has_avx2_fma_f16c() ? kVector : kBaseline;
  for (int64_t row = 0; row < rows; row += kRowsPerSweep) {
    const int64_t m = std::min(kRowsPerSweep, rows - row);
    const Sweep s{xf.data() + row * k, w.data, w.dtype, m, k, n};
    for (int32_t t = 0; t < threads; ++t) {  // each thread's sums of these m rows (not its whole buffer)
      std::fill(buffers + t * per_thread, buffers + t * per_thread + m * n, 0.0f);
    }
    if (threads == 1) {
      sweeps[m](s, 0, k, buffers, buffers + kRowsPerSweep * n);
    } else {
      const int64_t chunks = std::min<int64_t>(int64_t{threads} * kChunksPerThread, std::max<int64_t>(k / kStepRows, 1));
      run_chunks(threads, chunks, [&](int32_t t, int64_t c) {
        float* own = buffers + t * per_thread;
        sweeps[m](s, k * c / chunks / kStepRows * kStepRows, c + 1 == chunks ? k : k * (c + 1) / chunks / kStepRows * kStepRows,
                  own, own + kRowsPerSweep * n);
      });
    }
    for (int64_t r = 0; r < m; ++r) {
      float* out = result + r * n;
      std::memcpy(out, buffers + r * n, static_cast<size_t>(n) * sizeof(float));
      for (int32_t t = 1; t < threads; ++t) {
        const float* other = buffers + t * per_thread + r * n;
#pragma omp simd
        for (int64_t c = 0; c < n; ++c) out[c] += other[c];
      }
      if (quantized) {
#pragma omp simd
        for (int64_t c = 0; c < n; ++c) out[c] *= w_scale[c];
      }
      if (has_bias) {
        const float* b = bias.data();
#pragma omp simd
        for (int64_t c = 0; c < n; ++c) out[c] += b[c];
      }
      if (y.dtype == HAL_FLOAT32) {
        std::memcpy(static_cast<float*>(y.data) + (row + r) * n, out, static_cast<size_t>(n) * sizeof(float));
      } else {
        narrow(out, static_cast<uint16_t*>(y.data) + (row + r) * n, n, y.dtype);
      }
    }
  }
  scratch().trim();
  return HAL_OK;
}

}  // namespace

// Keyed by x's dtype; w's (a float or int8) is checked by linear_infer.
HAL_REGISTER_KERNEL("com.hal", "Linear", "cpu,ascend,kunlun", "float32,float16,bfloat16", linear_infer, linear_compute);

}  // namespace hal::kernels
