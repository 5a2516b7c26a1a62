// What hal._C's kernels share: threads, float16/bfloat16 <-> float32 conversion, vector math
// written so that gcc vectorizes it, and the per-ISA compilation of a kernel's inner loops.
//
// Vectorization: a kernel writes its loops once, as HAL_ALWAYS_INLINE code over float32 with
// `#pragma omp simd`, and instantiates them twice: with HAL_VECTOR_TARGET (AVX2 + FMA + F16C) and
// without (baseline x86-64), picking one at run time with hal::cpu_has_avx2_fma_f16c(). Because
// everything below the entry point is force-inlined, the whole loop nest is compiled for the
// wider target. `omp simd` needs only -fopenmp-simd (no OpenMP runtime); threads are ThreadPool's.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "common/cpu_features.h"
#include "hal/kernel.h"
#include "ops/thread_pool.h"

#define HAL_ALWAYS_INLINE inline __attribute__((always_inline))
#if defined(HAL_X86_DISPATCH)
#define HAL_VECTOR_TARGET __attribute__((target("avx2,fma,f16c")))
#else
#define HAL_VECTOR_TARGET
#endif

namespace hal::kernels {

// ---- threads --------------------------------------------------------------------------------

// Below this many elements of work per thread, waking another thread costs more than it saves.
// An element of work is one element read and one written; kernels that compute a transcendental
// per element count more than one (see RowCost).
constexpr int64_t kMinElementsPerThread = 64 * 1024;

// Chunks per thread that parallel_for hands out: enough to even out a late or slowed thread.
constexpr int64_t kChunksPerThread = 4;

// Runs fn(task, c) for every chunk c in [0, chunks) on `tasks` tasks of the kernels' pool (the
// caller runs task 0); task, in [0, tasks), indexes per-thread scratch. Chunks are taken in turn
// rather than a fixed share per task: a thread that starts late (its core busy with torch's or
// BLAS's spinning workers, or another process) takes fewer, and one that has not started by the
// time the caller runs out of chunks is not waited for, so a busy core costs at most the
// one-thread time instead of a scheduler slice.
template <class F>
void run_chunks(int32_t tasks, int64_t chunks, F&& fn) {
  std::atomic<int64_t> next{0};
  ThreadPool::global().run(tasks, [&](int32_t task) {
    for (int64_t c = next.fetch_add(1, std::memory_order_relaxed); c < chunks; c = next.fetch_add(1, std::memory_order_relaxed)) {
      fn(task, c);
    }
  });
}

// Runs fn(begin, end) over [0, items) split into contiguous ranges, on up to `threads` threads of
// the kernels' pool (the caller is one of them); each item is about `elements_per_item` elements.
// A thread may run several ranges, in any order; each item is in exactly one range.
template <class F>
void parallel_for(int64_t items, int64_t elements_per_item, int32_t threads, F&& fn) {
  if (items <= 0) return;
  int64_t total = items * std::max<int64_t>(elements_per_item, 1);
  int64_t useful = std::max<int64_t>(1, total / kMinElementsPerThread);
  int32_t n = static_cast<int32_t>(std::min<int64_t>({static_cast<int64_t>(std::max(threads, 1)), useful, items}));
  if (n <= 1) {
    fn(int64_t{0}, items);
    return;
  }
  int64_t chunks = std::min<int64_t>(items, int64_t{n} * kChunksPerThread);
  run_chunks(n, chunks, [&](int32_t, int64_t c) { fn(items * c / chunks, items * (c + 1) / chunks); });
}

// ---- scratch ----------------------------------------------------------------------------------

// A buffer of T, 64-byte aligned, grown when a call needs more and kept (up to kKeepBytes), so that
// a warm call allocates nothing; kernels keep one per thread (static thread_local).
template <class T>
class ScratchBuffer {
 public:
  static constexpr size_t kKeepBytes = size_t{16} << 20;
  ScratchBuffer() = default;
  ScratchBuffer(const ScratchBuffer&) = delete;
  ScratchBuffer& operator=(const ScratchBuffer&) = delete;
  ~ScratchBuffer() { std::free(data_); }
  T* get(int64_t count) {
    size_t bytes = (static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(T) + 63) / 64 * 64;
    if (bytes > bytes_) {
      std::free(data_);
      data_ = static_cast<T*>(std::aligned_alloc(64, bytes));
      bytes_ = data_ ? bytes : 0;
    }
    return data_;
  }
  // After a call: a buffer grown past kKeepBytes by a large problem is given back.
  void trim() {
    if (bytes_ > kKeepBytes) {
      std::free(data_);
      data_ = nullptr;
      bytes_ = 0;
    }
  }

 private:
  T* data_ = nullptr;
  size_t bytes_ = 0;
};

// ---- dtype conversion -----------------------------------------------------------------------

// float16 / bfloat16 (as 16-bit patterns) <-> float32; narrowing rounds to nearest even and keeps
// NaN a NaN. dtype is HAL_FLOAT16 or HAL_BFLOAT16.
void widen(const uint16_t* src, float* dst, int64_t n, int32_t dtype);
void narrow(const float* src, uint16_t* dst, int64_t n, int32_t dtype);

inline bool is_float_dtype(int32_t dtype) {
  return dtype == HAL_FLOAT32 || dtype == HAL_FLOAT16 || dtype == HAL_BFLOAT16;
}

// A float32 copy of a float tensor (a view when it is float32 already), for small operands such
// as weights that every row reads.
class FloatOperand {
 public:
  FloatOperand(const hal_tensor& t) : n_(hal_numel(&t)) {
    if (t.dtype == HAL_FLOAT32) {
      data_ = static_cast<const float*>(t.data);
    } else {
      owned_ = new float[static_cast<size_t>(std::max<int64_t>(n_, 1))];
      widen(static_cast<const uint16_t*>(t.data), owned_, n_, t.dtype);
      data_ = owned_;
    }
  }
  ~FloatOperand() { delete[] owned_; }
  FloatOperand(const FloatOperand&) = delete;
  FloatOperand& operator=(const FloatOperand&) = delete;
  const float* data() const { return data_; }

 private:
  int64_t n_;
  const float* data_ = nullptr;
  float* owned_ = nullptr;
};

// ---- vector math (gcc vectorizes these inside `omp simd` loops) -----------------------------

HAL_ALWAYS_INLINE float bits_to_float(int32_t bits) { return __builtin_bit_cast(float, bits); }

// e^x for every float: Cephes' range reduction x = n ln2 + r and degree-6 polynomial (about 1 ulp
// on [-87, 88]), 2^n applied in two halves so that subnormal results and overflow to inf come out
// right; NaN stays NaN. Written for what gcc makes of it inside `omp simd` loops, which is most of
// softmax's and SwiGLU's time: each clamp is a comparison and its own operand in the order of
// x86's max/min (`lo > x ? lo : x` is exactly vmaxps(lo, x), which passes a NaN x through), and n
// is rounded by adding 1.5 * 2^23, whose low mantissa bits then hold n (no round or convert).
HAL_ALWAYS_INLINE float exp_f32(float x) {
  float c = -104.0f > x ? -104.0f : x;
  c = 89.0f < c ? 89.0f : c;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer (|n| < 2^22)
  float shifted = c * 1.44269504088896341f + kRound;
  float fx = shifted - kRound;
  int32_t n = __builtin_bit_cast(int32_t, shifted) - __builtin_bit_cast(int32_t, kRound);
  float r = c - fx * 0.693359375f;
  r = r + fx * 2.12194440e-4f;
  float y = 1.9875691500e-4f;
  y = y * r + 1.3981999507e-3f;
  y = y * r + 8.3334519073e-3f;
  y = y * r + 4.1665795894e-2f;
  y = y * r + 1.6666665459e-1f;
  y = y * r + 5.0000001201e-1f;
  y = y * r * r + r + 1.0f;
  int32_t half = n >> 1;
  return y * bits_to_float((half + 127) << 23) * bits_to_float((n - half + 127) << 23);
}

// erf(x): Eigen's rational approximation for float (a few ulp; saturates to +-1 beyond |x| = 4).
HAL_ALWAYS_INLINE float erf_f32(float x) {
  float c = x < -4.0f ? -4.0f : (x > 4.0f ? 4.0f : x);
  float x2 = c * c;
  float p = -2.72614225801306e-10f;
  p = p * x2 + 2.77068142495902e-08f;
  p = p * x2 + -2.10102402082508e-06f;
  p = p * x2 + -5.69250639462346e-05f;
  p = p * x2 + -7.34990630326855e-04f;
  p = p * x2 + -2.95459980854025e-03f;
  p = p * x2 + -1.60960333262415e-02f;
  p = p * c;
  float q = -1.45660718464996e-05f;
  q = q * x2 + -2.13374055278905e-04f;
  q = q * x2 + -1.68282697438203e-03f;
  q = q * x2 + -7.37332916720468e-03f;
  q = q * x2 + -1.42647390514189e-02f;
  return p / q;
}

// tanh(x): Eigen's rational approximation for float (saturates beyond |x| = 7.9).
HAL_ALWAYS_INLINE float tanh_f32(float x) {
  float c = x < -7.90531110763549805f ? -7.90531110763549805f : (x > 7.90531110763549805f ? 7.90531110763549805f : x);
  float x2 = c * c;
  float p = -2.76076847742355e-16f;
  p = p * x2 + 2.00018790482477e-13f;
  p = p * x2 + -8.60467152213735e-11f;
  p = p * x2 + 5.12229709037114e-08f;
  p = p * x2 + 1.48572235717979e-05f;
  p = p * x2 + 6.37261928875436e-04f;
  p = p * x2 + 4.89352455891786e-03f;
  p = p * c;
  float q = 1.19825839466702e-06f;
  q = q * x2 + 1.18534705686654e-04f;
  q = q * x2 + 2.26843463243900e-03f;
  q = q * x2 + 4.89352518554385e-03f;
  float t = p / q;
  // Below 4e-4 the approximation is no better than tanh(x) = x, which is exact to float there.
  return __builtin_fabsf(c) < 4e-4f ? c : t;
}

// ---- reductions ---------------------------------------------------------------------------
// Sums kept in kLanes independent partial sums (four AVX2 vectors): one running sum would wait on
// the latency of each add, four keep the adder busy. The order of additions differs from a
// sequential sum by float32 rounding only.
constexpr int64_t kLanes = 32;

template <class Term>
HAL_ALWAYS_INLINE float lane_sum(int64_t n, const Term& term) {
  float lanes[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) {
#pragma omp simd
    for (int64_t j = 0; j < kLanes; ++j) lanes[j] += term(i + j);
  }
  float total = 0.0f;
  for (; i < n; ++i) total += term(i);
#pragma omp simd reduction(+ : total)
  for (int64_t j = 0; j < kLanes; ++j) total += lanes[j];
  return total;
}

struct Value {
  const float* x;
  HAL_ALWAYS_INLINE float operator()(int64_t i) const { return x[i]; }
};
struct Square {
  const float* x;
  HAL_ALWAYS_INLINE float operator()(int64_t i) const { return x[i] * x[i]; }
};
struct SquaredDeviation {
  const float* x;
  float mean;
  HAL_ALWAYS_INLINE float operator()(int64_t i) const { return (x[i] - mean) * (x[i] - mean); }
};

// ---- streaming stores -----------------------------------------------------------------------

// Outputs at least this large are written with non-temporal stores: they cannot stay in the last
// level cache (32 MiB on the EPYC hosts measured) for a later reader, and a normal store first
// reads each output line into the cache (read-for-ownership), a third memory stream on top of the
// input read and the output write. np.copyto (glibc memcpy) switches to such stores at the same scale.
constexpr int64_t kStreamingBytes = 16 << 20;

// Copies n floats to dst bypassing the caches where dst is 16-byte aligned (SSE: every x86-64 has
// it). The caller issues stream_fence() before its results are read by another thread.
HAL_ALWAYS_INLINE void stream_floats(const float* src, float* dst, int64_t n) {
#if defined(__x86_64__)
  int64_t i = 0;
  for (; i < n && (reinterpret_cast<uintptr_t>(dst + i) & 15) != 0; ++i) dst[i] = src[i];
  for (; i + 4 <= n; i += 4) _mm_stream_ps(dst + i, _mm_loadu_ps(src + i));
  for (; i < n; ++i) dst[i] = src[i];
#else
  std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
#endif
}

inline void stream_fence() {
#if defined(__x86_64__)
  _mm_sfence();
#endif
}

// ---- row kernels ----------------------------------------------------------------------------

// How much work a Row (or elementwise Map) does per element relative to one read and one write:
// a Row declares `static constexpr int64_t kCost` when it computes more (exp, erf, tanh cost about
// as much as four memory passes on AVX2), so smaller tensors are worth splitting across threads.
template <class Row, class = void>
struct RowCost : std::integral_constant<int64_t, 1> {};
template <class Row>
struct RowCost<Row, std::void_t<decltype(Row::kCost)>> : std::integral_constant<int64_t, Row::kCost> {};

// A kernel that maps each row of `in_width` elements to a row of `out_width` elements. Row is a
// functor with HAL_ALWAYS_INLINE `void operator()(const float* in, float* out, int64_t row)`.
struct RowShape {
  const void* in;
  void* out;
  int64_t rows, in_width, out_width;
  int32_t dtype;
};

// Rows up to this long are computed into an L1/L2-resident scratch row and streamed out when the
// output is large (kStreamingBytes); longer rows are written in place.
constexpr int64_t kMaxStreamedRow = 32 * 1024;

template <class Row>
HAL_ALWAYS_INLINE void rows_range(const Row& row, const RowShape& s, int64_t begin, int64_t end) {
  if (s.dtype == HAL_FLOAT32) {
    const float* in = static_cast<const float*>(s.in);
    float* out = static_cast<float*>(s.out);
    bool stream = s.rows * s.out_width * int64_t{sizeof(float)} >= kStreamingBytes && s.out_width <= kMaxStreamedRow;
    if (!stream) {
      for (int64_t r = begin; r < end; ++r) row(in + r * s.in_width, out + r * s.out_width, r);
      return;
    }
    float* scratch = new float[static_cast<size_t>(s.out_width)];
    for (int64_t r = begin; r < end; ++r) {
      row(in + r * s.in_width, scratch, r);
      stream_floats(scratch, out + r * s.out_width, s.out_width);
    }
    stream_fence();
    delete[] scratch;
    return;
  }
  // float16 / bfloat16: each row is widened into float32 scratch, computed, and narrowed.
  float* scratch = new float[static_cast<size_t>(s.in_width + s.out_width + 1)];
  const uint16_t* in = static_cast<const uint16_t*>(s.in);
  uint16_t* out = static_cast<uint16_t*>(s.out);
  for (int64_t r = begin; r < end; ++r) {
    widen(in + r * s.in_width, scratch, s.in_width, s.dtype);
    row(scratch, scratch + s.in_width, r);
    narrow(scratch + s.in_width, out + r * s.out_width, s.out_width, s.dtype);
  }
  delete[] scratch;
}

template <class Row>
HAL_VECTOR_TARGET void rows_range_vector(const Row& row, const RowShape& s, int64_t begin, int64_t end) {
  rows_range(row, s, begin, end);
}

template <class Row>
void rows_range_baseline(const Row& row, const RowShape& s, int64_t begin, int64_t end) {
  rows_range(row, s, begin, end);
}

template <class Row>
void run_rows(const Row& row, const RowShape& s, int32_t threads) {
  auto range = cpu_has_avx2_fma_f16c() ? &rows_range_vector<Row> : &rows_range_baseline<Row>;
  parallel_for(s.rows, std::max(s.in_width, s.out_width) * RowCost<Row>::value, threads,
               [&](int64_t begin, int64_t end) { range(row, s, begin, end); });
}

// An elementwise kernel: Map has HAL_ALWAYS_INLINE `void operator()(const float* in, float* out,
// int64_t n)`; the tensor is processed in blocks of kBlock elements.
constexpr int64_t kBlock = 4096;

// Block b of an elementwise kernel as a Row of the row machinery.
template <class Map>
struct BlockRow {
  static constexpr int64_t kCost = RowCost<Map>::value;
  const Map& map;
  int64_t n;
  HAL_ALWAYS_INLINE void operator()(const float* x, float* y, int64_t block) const {
    map(x, y, std::min(kBlock, n - block * kBlock));
  }
};

template <class Map>
void run_elementwise(const Map& map, const void* in, void* out, int64_t n, int32_t dtype, int32_t threads) {
  // Whole blocks go through the row machinery; the last, partial one is done on its own below.
  int64_t full = n / kBlock;
  run_rows(BlockRow<Map>{map, n}, RowShape{in, out, full, kBlock, kBlock, dtype}, threads);
  int64_t tail = n - full * kBlock;
  if (tail > 0) {
    size_t itemsize = dtype == HAL_FLOAT32 ? 4 : 2;
    RowShape last{static_cast<const char*>(in) + full * kBlock * itemsize, static_cast<char*>(out) + full * kBlock * itemsize, 1,
                  tail, tail, dtype};
    run_rows(BlockRow<Map>{map, tail}, last, 1);
  }
}

}  // namespace hal::kernels
