// com.hal::Linear: a fully connected layer for the few rows of a decode step, the weights read in
// place, once, at memory speed.
//   Linear(x [..., K], w [K, N][, bias [N]]) -> y [..., N], x's dtype
//   y[m, n] = sum_k x[m, k] * w[k, n] (+ bias[n]), summed in float32
// x and bias are float32, float16 or bfloat16; w may be any of the three independently (a chip's
// float16 weights under a float32 model: Ascend's Cube under allow_fp32_to_fp16), widened to
// float32 in registers or L1 as it is read.
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

int64_t itemsize(int32_t dtype) { return dtype == HAL_FLOAT32 ? 4 : 2; }

int32_t linear_infer(hal_kernel_call* call) {
  HAL_CHECK(check_arity(call, "Linear", 2, 3));
  HAL_CHECK(check_min_rank(call, "Linear", 0, "x", 1));
  const hal_tensor &x = call->inputs[0], &w = call->inputs[1];
  const char* names[] = {"x", "w", "bias"};
  for (int32_t i = 0; i < call->num_inputs; ++i) {
    if (!is_float_dtype(call->inputs[i].dtype)) {
      return hal_fail(call, HAL_ERR_DTYPE, "Linear: %s must be float32, float16 or bfloat16, got %s", names[i],
                      hal_dtype_name(call->inputs[i].dtype));
    }
  }
  const int64_t k = x.shape[x.ndim - 1];
  if (w.ndim != 2 || w.shape[0] != k) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "Linear: w must have shape (K, N) with K = %lld (x's last dimension), got %s",
                    static_cast<long long>(k), shape_string(w).c_str());
  }
  if (call->num_inputs == 3) HAL_CHECK(check_vector(call, "Linear", 2, "bias", w.shape[1]));
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
template <int M, int J>
HAL_ALWAYS_INLINE void step(const Sweep& s, const float* const* wj, int64_t k0, int64_t c0, int64_t c1, float* sums) {
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
    for (int j = 0; j < J; ++j) b[j] = wj[j][c - c0];
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
template <int M>
HAL_ALWAYS_INLINE void sweep_range(const Sweep& s, int64_t k0, int64_t k1, float* sums, float* widened) {
  if (s.w_dtype == HAL_FLOAT32) {
    const float* w = static_cast<const float*>(s.w);
    int64_t k = k0;
    for (; k + kStepRows <= k1; k += kStepRows) {
      const float* wj[kStepRows];
      for (int j = 0; j < kStepRows; ++j) wj[j] = w + (k + j) * s.n;
      step<M, kStepRows>(s, wj, k, 0, s.n, sums);
    }
    for (; k < k1; ++k) {
      const float* w1 = w + k * s.n;
      step<M, 1>(s, &w1, k, 0, s.n, sums);
    }
    return;
  }
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
// AVX2 + F16C: float16 / bfloat16 rows of w widened in registers as they are read (vcvtph2ps, or
// a 16-bit shift for bfloat16), so that a 16-bit weight costs its two bytes of memory traffic and
// no pass through L1.
template <bool kBf16>
HAL_VECTOR_TARGET HAL_ALWAYS_INLINE __m256 load8(const uint16_t* p) {
  const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  if constexpr (kBf16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  return _mm256_cvtph_ps(h);
}

template <bool kBf16>
HAL_VECTOR_TARGET HAL_ALWAYS_INLINE float load1(const uint16_t* p) {
  if constexpr (kBf16) return __builtin_bit_cast(float, static_cast<uint32_t>(*p) << 16);
  return _cvtsh_ss(*p);
}

// sums[r][0..n) += x[r][k + j] * w[k + j][0..n) for the J rows of w from k.
template <int M, int J, bool kBf16>
HAL_VECTOR_TARGET HAL_ALWAYS_INLINE void step16(const Sweep& s, const uint16_t* w, int64_t k, float* sums) {
  const uint16_t* rows[J];
  for (int j = 0; j < J; ++j) rows[j] = w + (k + j) * s.n;
  const int64_t full = s.n / 8 * 8;
  for (int64_t c = 0; c < full; c += 8) {
    __m256 b[J];
#pragma GCC unroll 8
    for (int j = 0; j < J; ++j) b[j] = load8<kBf16>(rows[j] + c);
#pragma GCC unroll 4
    for (int r = 0; r < M; ++r) {
      const float* xr = s.x + r * s.k + k;
      __m256 total = _mm256_loadu_ps(sums + r * s.n + c);
#pragma GCC unroll 8
      for (int j = 0; j < J; ++j) total = _mm256_fmadd_ps(_mm256_broadcast_ss(xr + j), b[j], total);
      _mm256_storeu_ps(sums + r * s.n + c, total);
    }
  }
  for (int64_t c = full; c < s.n; ++c) {
    for (int r = 0; r < M; ++r) {
      float total = sums[r * s.n + c];
      for (int j = 0; j < J; ++j) total += s.x[r * s.k + k + j] * load1<kBf16>(rows[j] + c);
      sums[r * s.n + c] = total;
    }
  }
}

template <int M, bool kBf16>
HAL_VECTOR_TARGET void sweep16(const Sweep& s, int64_t k0, int64_t k1, float* sums) {
  const uint16_t* w = static_cast<const uint16_t*>(s.w);
  int64_t k = k0;
  for (; k + kStepRows <= k1; k += kStepRows) step16<M, kStepRows, kBf16>(s, w, k, sums);
  for (; k < k1; ++k) step16<M, 1, kBf16>(s, w, k, sums);
}
#endif

template <int M>
HAL_VECTOR_TARGET void sweep_vector(const Sweep& s, int64_t k0, int64_t k1, float* sums, float* widened) {
#if defined(HAL_X86_DISPATCH)
  if (s.w_dtype == HAL_FLOAT16) return sweep16<M, false>(s, k0, k1, sums);
  if (s.w_dtype == HAL_BFLOAT16) return sweep16<M, true>(s, k0, k1, sums);
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
  const bool has_bias = call->num_inputs == 3;
  FloatOperand bias(call->inputs[has_bias ? 2 : 0]);
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
    std::fill(buffers, buffers + threads * per_thread, 0.0f);
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

HAL_REGISTER_KERNEL("com.hal", "Linear", "cpu,ascend,kunlun", "float32,float16,bfloat16", linear_infer, linear_compute);

}  // namespace hal::kernels
