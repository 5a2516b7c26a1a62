// com.hal::QuantizedMatMul: symmetric int8 / int16 GEMM with int32 partial sums, int64 totals and
// float32 output (the Kunlun FC_INT16 path and Ascend's int8 cube path).
//   QuantizedMatMul(a [..., K], b [K, N], a_scale, b_scale) -> y [..., N] float32
//   y[m, n] = float32(sum_k a[m, k] * b[k, n]) * float32(a_scale[m] * b_scale[n])
// a_scale is per tensor (one value) or per row of a (one per m); b_scale per tensor or per output
// channel (one per n). This is exactly hal.sim.numerics' emulation of Kunlun's int16 FC: exact
// integer products, the sum converted to float32 once, times the product of the scales.
//
// Overflow: every product is exact, and partial sums are kept in int32 only as long as they
// provably fit, then added into int64 (which holds any K below 2^33). int8 operands: a pair of
// products is at most 2 * 128 * 128 = 2^15, so 32768 pairs fit int32. int16 operands: a pair can
// reach 2^31, so b is split into a high byte and an unsigned low byte (b = 256 bh + bl): a pair of
// a * bl is below 2^24 and one of a * bh at most 2^23, and 128 pairs of either fit int32. The whole
// int8 and int16 ranges (-128 and -32768 included) are computed exactly.
#include <immintrin.h>

#include <cstdlib>
#include <cstring>

#include "ops/checks.h"
#include "ops/kernel_support.h"

namespace hal::kernels {
namespace {

int32_t qmm_infer(hal_kernel_call* call) {
  HAL_CHECK(check_arity(call, "QuantizedMatMul", 4, 4));
  HAL_CHECK(check_min_rank(call, "QuantizedMatMul", 0, "a", 1));
  const hal_tensor &a = call->inputs[0], &b = call->inputs[1], &sa = call->inputs[2], &sb = call->inputs[3];
  if (a.dtype != HAL_INT8 && a.dtype != HAL_INT16) {
    return hal_fail(call, HAL_ERR_DTYPE, "QuantizedMatMul: a must be int8 or int16, got %s", hal_dtype_name(a.dtype));
  }
  HAL_CHECK(check_same_dtype(call, "QuantizedMatMul", 1, "b"));
  int64_t k = a.shape[a.ndim - 1];
  if (b.ndim != 2 || b.shape[0] != k) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "QuantizedMatMul: b must have shape (K, N) with K = %lld (a's last dimension), got %s",
                    static_cast<long long>(k), shape_string(b).c_str());
  }
  int64_t rows = rows_of(a), n = b.shape[1];
  const char* names[] = {"a_scale", "b_scale"};
  const int64_t per_channel[] = {rows, n};
  const char* channel[] = {"rows of a", "columns of b"};
  for (int32_t i = 0; i < 2; ++i) {
    const hal_tensor& s = call->inputs[2 + i];
    if (s.dtype != HAL_FLOAT32) {
      return hal_fail(call, HAL_ERR_DTYPE, "QuantizedMatMul: %s must be float32, got %s", names[i], hal_dtype_name(s.dtype));
    }
    int64_t count = hal_numel(&s);
    if (s.ndim > 1 || (count != 1 && count != per_channel[i])) {
      return hal_fail(call, HAL_ERR_INVALID_ARGUMENT,
                      "QuantizedMatMul: %s must be one value (per tensor) or %lld values (one per %s), got shape %s", names[i],
                      static_cast<long long>(per_channel[i]), channel[i], shape_string(s).c_str());
    }
  }
  (void)sa;
  (void)sb;
  int64_t shape[HAL_MAX_DIMS];
  for (int32_t i = 0; i + 1 < a.ndim; ++i) shape[i] = a.shape[i];
  shape[a.ndim - 1] = n;
  hal_set_output(call, 0, HAL_FLOAT32, a.ndim, shape);
  return HAL_OK;
}

// ---- layout ---------------------------------------------------------------------------------
// K is taken in pairs: P = ceil(K / 2) pairs, a zero standing in for k = K when K is odd.
//
// a is widened to int16 rows of 2P (and a little stride padding), so that a micro tile reads
// (a[m, 2p], a[m, 2p + 1]) as one int32 and broadcasts it.
//
// b is packed in slivers, one micro tile's columns, 64 bytes (kPairInt16s int16) per pair p:
//   int8:  16 columns: [b[2p, c], b[2p + 1, c]] for c = 0..15;
//   int16:  8 columns: [bl[2p, c], bl[2p + 1, c]] for c = 0..7, then the same of bh, where
//          b = 256 bh + bl, bl = 0..255 and bh = -128..127.
// One vpmaddwd of a broadcast pair of a with a 32-byte vector of pairs of b gives 8 columns'
// sums over the pair. A micro tile is up to kMR rows by one sliver: 6 rows x 2 vectors of int32
// sums (int8), or 6 rows x {lo, hi} (int16), in twelve registers; each step of it loads two
// vectors of b, broadcasts six pairs of a and does twelve vpmaddwd and twelve vpaddd.
constexpr int kMR = 6;                       // rows per micro tile
constexpr int64_t kPairInt16s = 32;          // int16 of a sliver per pair of k (64 bytes)
constexpr int64_t kCols8 = 16, kCols16 = 8;  // columns per sliver: int8, int16
// Pairs of k summed in int32 before they are added into int64 (see the overflow note).
constexpr int64_t kChunk8 = 32768, kChunk16 = 128;
// int16 tiles up to this many pairs have |sum| <= 2^20 * 2^30 = 2^50: int64 -> double is exact
// there, and double -> float32 then rounds once, as the reference's int64 -> float32 does.
constexpr int64_t kDoublePairs16 = int64_t{1} << 19;

struct Problem {
  const void* a;
  const void* b;
  const float* sa;  // sa[row_scales ? m : 0]
  const float* sb;  // sb[col_scales ? n : 0]
  float* y;
  int64_t m, k, n, pairs;
  int64_t lda;      // int16 between rows of the widened a
  int64_t cols;     // columns per sliver
  int64_t slivers;  // ceil(n / cols)
  bool split;       // int16 (b in two byte planes)
  bool row_scales, col_scales;
  float sb_tensor[kCols8];  // a per-tensor b scale, once per column of a sliver (the tiles' view of it)
  int16_t* pa;      // widened a, [m][lda]
  int16_t* pb;      // packed b: all slivers, or per-thread blocks of them
  int64_t sliver_size() const { return pairs * kPairInt16s; }
};

// Per-thread buffers for the packed operands (kernel_support.h).
using Scratch = ScratchBuffer<int16_t>;

Scratch& scratch_a() {
  static thread_local Scratch s;
  return s;
}
Scratch& scratch_b() {
  static thread_local Scratch s;
  return s;
}

// ---- packing ----------------------------------------------------------------------------------

template <class T>
void widen_rows(const Problem& p, int64_t first, int64_t last) {
  for (int64_t r = first; r < last; ++r) {
    const T* src = static_cast<const T*>(p.a) + r * p.k;
    int16_t* dst = p.pa + r * p.lda;
    for (int64_t i = 0; i < p.k; ++i) dst[i] = src[i];
    for (int64_t i = p.k; i < p.lda; ++i) dst[i] = 0;
  }
}

// Sliver j of b (columns [j * cols, (j + 1) * cols)), zero beyond n and for k = K.
template <class T>
void pack_sliver(const Problem& p, int64_t j, int16_t* out) {
  const T* b = static_cast<const T*>(p.b);
  for (int64_t q = 0; q < p.pairs; ++q) {
    int16_t* dst = out + q * kPairInt16s;
    for (int64_t c = 0; c < p.cols; ++c) {
      int64_t col = j * p.cols + c;
      for (int64_t t = 0; t < 2; ++t) {
        int64_t row = 2 * q + t;
        int32_t v = (col < p.n && row < p.k) ? static_cast<int32_t>(b[row * p.n + col]) : 0;
        if (p.split) {
          dst[2 * c + t] = static_cast<int16_t>(v & 0xff);                     // 0..255
          dst[16 + 2 * c + t] = static_cast<int16_t>((v - (v & 0xff)) / 256);  // -128..127
        } else {
          dst[2 * c + t] = static_cast<int16_t>(v);
        }
      }
    }
  }
}

// ---- micro tiles ------------------------------------------------------------------------------

// Rows of the widened a from `a` on (lda apart) against one sliver `b`, over pairs [p0, p1).
struct Tile {
  const int16_t* a;
  const int16_t* b;
  int64_t lda, p0, p1;
};

// Where a tile's results go: scaled into y (`cols` of the sliver's columns real), or, with y null,
// its raw sums into `sums`. The scales are read where they lie (no per-tile copies: at 64^3 a
// tile computes for about 80 ns, and its bookkeeping is counted in nanoseconds too).
struct Epilogue {
  float* y;
  int64_t ldy;
  int cols;
  const float* sa;  // the tile's first row's a scale; row r's is sa[r * sa_step]
  int64_t sa_step;  // 1 (one scale per row) or 0 (per tensor)
  const float* sb;  // the b scales of the sliver's `cols` real columns
  void* sums;
};

inline Epilogue raw_sums(void* sums) { return Epilogue{nullptr, 0, 0, nullptr, 0, nullptr, sums}; }

// y[row, col] = float32(sum) * (a_scale * b_scale): the reference's float32 operations.
void store_tile(const Problem& p, int64_t row0, int rows, int64_t col0, const int64_t* acc, int64_t stride) {
  const int64_t live = std::min(p.cols, p.n - col0);
  for (int r = 0; r < rows; ++r) {
    float scale_a = p.sa[p.row_scales ? row0 + r : 0];
    float* y = p.y + (row0 + r) * p.n + col0;
    for (int64_t c = 0; c < live; ++c) {
      float scale = scale_a * p.sb[p.col_scales ? col0 + c : 0];
      y[c] = static_cast<float>(acc[r * stride + c]) * scale;
    }
  }
}

// Baseline: acc[rows][16] += the tile's exact sums, computed as the vector tiles do (int32 sums
// of pairs over chunks, then int64) in loops the compiler vectorizes for the baseline instruction
// set. Lane i of a packed pair is int16 [2i, 2i + 1]: int8 column c is lane c; int16 column c has
// its low bytes in lane c and its high bytes in lane 8 + c.
template <bool kSplit>
void tile_baseline(const Tile& t, int rows, int64_t* acc) {
  constexpr int64_t lanes = 16;
  const int64_t chunk = kSplit ? kChunk16 : kChunk8;
  for (int64_t q0 = t.p0; q0 < t.p1; q0 += chunk) {
    const int64_t q1 = std::min(t.p1, q0 + chunk);
    int32_t sums[kMR][lanes] = {};
    for (int64_t q = q0; q < q1; ++q) {
      const int16_t* b = t.b + q * kPairInt16s;
      for (int r = 0; r < rows; ++r) {
        const int32_t a0 = t.a[r * t.lda + 2 * q], a1 = t.a[r * t.lda + 2 * q + 1];
        for (int64_t i = 0; i < lanes; ++i) sums[r][i] += a0 * b[2 * i] + a1 * b[2 * i + 1];
      }
    }
    for (int r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < (kSplit ? kCols16 : kCols8); ++c) {
        acc[r * kCols8 + c] += kSplit ? int64_t{sums[r][8 + c]} * 256 + sums[r][c] : int64_t{sums[r][c]};
      }
    }
  }
}

#if defined(HAL_X86_DISPATCH)

HAL_VECTOR_TARGET HAL_ALWAYS_INLINE __m256i broadcast_pair(const int16_t* at) {
  int32_t pair;
  std::memcpy(&pair, at, sizeof(pair));
  return _mm256_set1_epi32(pair);
}

// Lane masks for the first `cols` of 16 columns: lanes 0..7 and 8..15.
struct ColumnMasks {
  __m256i lo, hi;
  HAL_VECTOR_TARGET HAL_ALWAYS_INLINE explicit ColumnMasks(int cols) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    lo = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols), lane);
    hi = _mm256_cmpgt_epi32(_mm256_set1_epi32(cols - 8), lane);
  }
};

// One int8 tile row: y[c] = float32(sum[c]) * (a_scale * b_scale[c]) for the real columns (the
// reference's float32 operations, in its order).
HAL_VECTOR_TARGET HAL_ALWAYS_INLINE void store_scaled_row(__m256i sum0, __m256i sum1, float a_scale, __m256 sb0, __m256 sb1,
                                                          const ColumnMasks& masks, bool whole, float* y) {
  const __m256 sa = _mm256_set1_ps(a_scale);
  const __m256 y0 = _mm256_mul_ps(_mm256_cvtepi32_ps(sum0), _mm256_mul_ps(sa, sb0));
  const __m256 y1 = _mm256_mul_ps(_mm256_cvtepi32_ps(sum1), _mm256_mul_ps(sa, sb1));
  if (whole) {
    _mm256_storeu_ps(y, y0);
    _mm256_storeu_ps(y + 8, y1);
  } else {
    _mm256_maskstore_ps(y, masks.lo, y0);
    _mm256_maskstore_ps(y + 8, masks.hi, y1);
  }
}

// The hot loop: for R rows and one sliver, the int32 sums over pairs [p0, p1) of each row's
// broadcast pairs madd the sliver's two vectors, to [R][2] vectors: int8 columns 0..7 and 8..15,
// or int16 the sums with bl and with bh. With e.y set (int8, all pairs of the tile) they are
// scaled into y straight from the registers; otherwise stored raw to e.sums. Twelve named
// accumulators (arrays of vectors make gcc keep copies on the stack).
template <int R>
HAL_VECTOR_TARGET __attribute__((noinline)) void pair_sums(const Tile& t, const Epilogue& e) {
  const int16_t* a0 = t.a;
  const int16_t* a1 = a0 + t.lda;
  const int16_t* a2 = a1 + t.lda;
  const int16_t* a3 = a2 + t.lda;
  const int16_t* a4 = a3 + t.lda;
  const int16_t* a5 = a4 + t.lda;
  __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256i c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  const int16_t* b = t.b + t.p0 * kPairInt16s;
#define HAL_QMM_ROW(r)                                                \
  if constexpr (R > r) {                                              \
    const __m256i av = broadcast_pair(a##r + 2 * q);                  \
    c##r##0 = _mm256_add_epi32(c##r##0, _mm256_madd_epi16(av, v0));   \
    c##r##1 = _mm256_add_epi32(c##r##1, _mm256_madd_epi16(av, v1));   \
  }
#pragma GCC unroll 4
  for (int64_t q = t.p0; q < t.p1; ++q, b += kPairInt16s) {
    const __m256i v0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b));
    const __m256i v1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(b + 16));
    HAL_QMM_ROW(0)
    HAL_QMM_ROW(1)
    HAL_QMM_ROW(2)
    HAL_QMM_ROW(3)
    HAL_QMM_ROW(4)
    HAL_QMM_ROW(5)
  }
#undef HAL_QMM_ROW
  if (e.y == nullptr) {
    __m256i* sums = static_cast<__m256i*>(e.sums);
#define HAL_QMM_STORE(r)                              \
  if constexpr (R > r) {                              \
    _mm256_store_si256(sums + 2 * r, c##r##0);        \
    _mm256_store_si256(sums + 2 * r + 1, c##r##1);    \
  }
    HAL_QMM_STORE(0)
    HAL_QMM_STORE(1)
    HAL_QMM_STORE(2)
    HAL_QMM_STORE(3)
    HAL_QMM_STORE(4)
    HAL_QMM_STORE(5)
#undef HAL_QMM_STORE
    return;
  }
  const ColumnMasks masks(e.cols);
  const bool whole = e.cols == kCols8;
  const __m256 sb0 = _mm256_maskload_ps(e.sb, masks.lo), sb1 = _mm256_maskload_ps(e.sb + 8, masks.hi);
#define HAL_QMM_SCALE(r)                                                                                 \
  if constexpr (R > r) {                                                                                 \
    store_scaled_row(c##r##0, c##r##1, e.sa[r * e.sa_step], sb0, sb1, masks, whole, e.y + r * e.ldy);    \
  }
  HAL_QMM_SCALE(0)
  HAL_QMM_SCALE(1)
  HAL_QMM_SCALE(2)
  HAL_QMM_SCALE(3)
  HAL_QMM_SCALE(4)
  HAL_QMM_SCALE(5)
#undef HAL_QMM_SCALE
}

// R rows x an int16 sliver, all pairs of t: pair_sums over kChunk16 pairs at a time, added as
// 256 * hi + lo into int64 totals, then (with e.y set, and at most kDoublePairs16 pairs) scaled
// into y; otherwise the totals (int64 [R][8]) are left in e.sums.
template <int R>
HAL_VECTOR_TARGET __attribute__((noinline)) void tile_int16(const Tile& t, const Epilogue& e) {
  alignas(32) __m256i totals[R][2], sums[R][2];  // [row][columns 0..3, 4..7] int64; [row][lo, hi] int32
  int64_t q0 = t.p0;
  do {  // once at least: K = 0 gives zeros
    Tile part = t;
    part.p0 = q0;
    part.p1 = std::min(t.p1, q0 + kChunk16);
    pair_sums<R>(part, raw_sums(&sums[0][0]));
    for (int r = 0; r < R; ++r) {
      const __m256i lo = sums[r][0], hi = sums[r][1];
      __m256i sum0 = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(lo)),
                                      _mm256_slli_epi64(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(hi)), 8));
      __m256i sum1 = _mm256_add_epi64(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(lo, 1)),
                                      _mm256_slli_epi64(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(hi, 1)), 8));
      if (part.p0 != t.p0) {
        sum0 = _mm256_add_epi64(totals[r][0], sum0);
        sum1 = _mm256_add_epi64(totals[r][1], sum1);
      }
      totals[r][0] = sum0;
      totals[r][1] = sum1;
    }
    q0 = part.p1;
  } while (q0 < t.p1);
  if (e.y == nullptr) {
    std::memcpy(e.sums, totals, sizeof(totals));
    return;
  }
  // int64 -> double for |x| < 2^51: x added to the bits of 1.5 * 2^52 is the double 1.5 * 2^52 + x.
  const __m256i magic_bits = _mm256_set1_epi64x(0x4338000000000000);
  const __m256d magic = _mm256_castsi256_pd(magic_bits);
  const __m256i mask = ColumnMasks(e.cols).lo;
  const __m256 sb = _mm256_maskload_ps(e.sb, mask);
  for (int r = 0; r < R; ++r) {
    const __m256d d0 = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_add_epi64(totals[r][0], magic_bits)), magic);
    const __m256d d1 = _mm256_sub_pd(_mm256_castsi256_pd(_mm256_add_epi64(totals[r][1], magic_bits)), magic);
    const __m256 sum = _mm256_set_m128(_mm256_cvtpd_ps(d1), _mm256_cvtpd_ps(d0));
    const __m256 v = _mm256_mul_ps(sum, _mm256_mul_ps(_mm256_set1_ps(e.sa[r * e.sa_step]), sb));
    if (e.cols == kCols16) {
      _mm256_storeu_ps(e.y + r * e.ldy, v);
    } else {
      _mm256_maskstore_ps(e.y + r * e.ldy, mask, v);
    }
  }
}

using TileFn = void (*)(const Tile&, const Epilogue&);
constexpr TileFn kTileInt8[kMR + 1] = {nullptr, pair_sums<1>, pair_sums<2>, pair_sums<3>, pair_sums<4>, pair_sums<5>, pair_sums<6>};
constexpr TileFn kTileInt16[kMR + 1] = {nullptr, tile_int16<1>, tile_int16<2>, tile_int16<3>, tile_int16<4>, tile_int16<5>, tile_int16<6>};

HAL_VECTOR_TARGET void widen_rows_vector(const Problem& p, int64_t first, int64_t last) {
  for (int64_t r = first; r < last; ++r) {
    int16_t* dst = p.pa + r * p.lda;
    int64_t i = 0;
    if (p.split) {
      const int16_t* src = static_cast<const int16_t*>(p.a) + r * p.k;
      for (; i + 16 <= p.k; i += 16) {
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
      }
      for (; i < p.k; ++i) dst[i] = src[i];
    } else {
      const int8_t* src = static_cast<const int8_t*>(p.a) + r * p.k;
      for (; i + 16 <= p.k; i += 16) {
        const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm256_cvtepi8_epi16(v));
      }
      for (; i < p.k; ++i) dst[i] = src[i];
    }
    for (; i < p.lda; ++i) dst[i] = 0;
  }
}

// Slivers [first, last) of b, packed one after another from `out`, with vector unpacks: pair by
// pair, so that each visit to two rows of b reads (last - first) * 16 or * 8 contiguous columns.
// The last sliver of an N that is not a multiple of its width is packed as pack_sliver does.
HAL_VECTOR_TARGET void pack_slivers_vector(const Problem& p, int64_t first, int64_t last, int16_t* out) {
  const int64_t full = std::min(last, p.n / p.cols);  // slivers with all their columns in b
  const int64_t whole = p.k / 2;                      // pairs with both rows in b (odd K: the last is a row and zeros)
  const int64_t size = p.sliver_size();
  // The rows a few pairs ahead are prefetched: two rows of b are N elements apart, a stride the
  // hardware prefetchers follow poorly when N is large.
  constexpr int64_t kAhead = 8;
  const int64_t elem = p.split ? 2 : 1, row_bytes = p.n * elem;
  const int64_t span_first = first * p.cols * elem, span_last = std::min(last * p.cols, p.n) * elem;
  const char* bytes = static_cast<const char*>(p.b);
  for (int64_t q = 0; q < p.pairs; ++q) {
    if (q + kAhead < whole) {
      const char* ahead = bytes + 2 * (q + kAhead) * row_bytes;
      for (int64_t at = span_first; at < span_last; at += 64) {
        _mm_prefetch(ahead + at, _MM_HINT_T0);
        _mm_prefetch(ahead + row_bytes + at, _MM_HINT_T0);
      }
    }
    int16_t* dst = out + q * kPairInt16s;
    if (p.split) {
      const int16_t* r0 = static_cast<const int16_t*>(p.b) + 2 * q * p.n;
      const int16_t* r1 = r0 + p.n;
      const __m256i low_byte = _mm256_set1_epi16(0xff);
      for (int64_t j = first; j < full; ++j, dst += size) {
        const __m128i x0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r0 + j * kCols16));
        const __m128i x1 = q < whole ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(r1 + j * kCols16)) : _mm_setzero_si128();
        const __m256i v = _mm256_set_m128i(_mm_unpackhi_epi16(x0, x1), _mm_unpacklo_epi16(x0, x1));
        _mm256_store_si256(reinterpret_cast<__m256i*>(dst), _mm256_and_si256(v, low_byte));
        _mm256_store_si256(reinterpret_cast<__m256i*>(dst + 16), _mm256_srai_epi16(v, 8));
      }
    } else {
      const int8_t* r0 = static_cast<const int8_t*>(p.b) + 2 * q * p.n;
      const int8_t* r1 = r0 + p.n;
      for (int64_t j = first; j < full; ++j, dst += size) {
        const __m128i x0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(r0 + j * kCols8));
        const __m128i x1 = q < whole ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(r1 + j * kCols8)) : _mm_setzero_si128();
        _mm256_store_si256(reinterpret_cast<__m256i*>(dst), _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(x0, x1)));
        _mm256_store_si256(reinterpret_cast<__m256i*>(dst + 16), _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(x0, x1)));
      }
    }
  }
  for (int64_t j = std::max(first, full); j < last; ++j) {
    if (p.split) {
      pack_sliver<int16_t>(p, j, out + (j - first) * size);
    } else {
      pack_sliver<int8_t>(p, j, out + (j - first) * size);
    }
  }
}


// ---- few rows of a: b read in place ----------------------------------------------------------
// With a few rows of a (a decode step: one token's activations times int8 or int16 weights),
// packing b costs more than the product: it reads b, writes it as int16 pairs (int16: two planes)
// and reads that back, several times b's bytes of memory traffic for a matrix used once. Up to
// kInPlaceRows rows, b is read where it lies instead, row after row, front to back: each pair of
// its rows is interleaved into int16 pairs in registers (what packing writes to memory) and
// multiplied with each row of a's broadcast pair, into int32 sums of every column kept in a
// buffer (kSweepRows x N x 4 bytes a thread, in L1 or L2). Reading along b's rows matters: going down a
// column block instead touches one page per row (N bytes apart), which at N = 4096 missed the
// TLB and the cache sets on every access and ran at 2-3 GB/s.
constexpr int64_t kInPlaceRows = 8;
constexpr int64_t kSweepRows = 4;  // rows of a per sweep along b: their 2 x 4 broadcast pairs stay in registers
// A thread per this many bytes of b: a sweep runs at 15-25 GB/s from cache, so below it a second
// thread's wake-up, buffer and reduction cost more than its half of the sweep (256 KiB of int16
// one row: 14 us on one thread, 24-28 us on two, when this was 64 KiB).
constexpr int64_t kInPlaceBytesPerThread = 256 << 10;

// Where a sweep reads b: b itself for the columns [0, full) (whole groups of 16), `tail` for the
// last n - full (a zero-padded copy, rows 16 elements apart), and `zeros` (at least n elements)
// for a row past K; so that the loops over columns test nothing.
struct InPlaceB {
  const void* tail;
  const void* zeros;
  int64_t full;
};

// The rows of b that pairs q .. q + P - 1 read (2P of them), in b and in the tail.
template <class T, int P>
struct PairRows {
  const T* rows[2 * P];
  const T* tail[2 * P];
  PairRows(const Problem& p, const InPlaceB& where, int64_t q) {
    for (int i = 0; i < 2 * P; ++i) {
      const int64_t row = 2 * q + i;
      const bool real = row < p.k;
      rows[i] = real ? static_cast<const T*>(p.b) + row * p.n : static_cast<const T*>(where.zeros);
      tail[i] = real ? static_cast<const T*>(where.tail) + row * 16 : static_cast<const T*>(where.zeros);
    }
  }
};

template <int M, int P>
struct BroadcastPairs {
  __m256i av[M][P];
  HAL_VECTOR_TARGET HAL_ALWAYS_INLINE BroadcastPairs(const Problem& p, int64_t q) {
#pragma GCC unroll 8
    for (int r = 0; r < M; ++r) {
#pragma GCC unroll 2
      for (int j = 0; j < P; ++j) av[r][j] = broadcast_pair(p.pa + r * p.lda + 2 * (q + j));
    }
  }
};

// int8: sums[r][c .. c + 16) += the group's products, its rows read from rows[i] + offset.
template <int M, int P>
HAL_VECTOR_TARGET HAL_ALWAYS_INLINE void group8(const BroadcastPairs<M, P>& a, const int8_t* const* rows, int64_t offset, int32_t* sums,
                                                int64_t ld, int64_t c) {
  __m256i lo[P], hi[P];
#pragma GCC unroll 2
  for (int j = 0; j < P; ++j) {  // (b[2q, c], b[2q + 1, c]) widened to int16: columns 0..7, 8..15
    const __m128i x0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[2 * j] + offset));
    const __m128i x1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[2 * j + 1] + offset));
    lo[j] = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(x0, x1));
    hi[j] = _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(x0, x1));
  }
#pragma GCC unroll 8
  for (int r = 0; r < M; ++r) {
    __m256i* s = reinterpret_cast<__m256i*>(sums + r * ld + c);
    __m256i s0 = _mm256_loadu_si256(s), s1 = _mm256_loadu_si256(s + 1);
#pragma GCC unroll 2
    for (int j = 0; j < P; ++j) {
      s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(a.av[r][j], lo[j]));
      s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(a.av[r][j], hi[j]));
    }
    _mm256_storeu_si256(s, s0);
    _mm256_storeu_si256(s + 1, s1);
  }
}

// int8: sums[r][0..n) += the products of pairs q .. q + P - 1 for the M rows of a.
template <int M, int P>
HAL_VECTOR_TARGET __attribute__((noinline)) void in_place_pairs(const Problem& p, const InPlaceB& where, int64_t q, int32_t* sums,
                                                               int64_t ld) {
  const PairRows<int8_t, P> rows(p, where, q);
  const BroadcastPairs<M, P> a(p, q);
  for (int64_t c = 0; c < where.full; c += 16) group8<M, P>(a, rows.rows, c, sums, ld, c);
  if (where.full < p.n) group8<M, P>(a, rows.tail, 0, sums, ld, where.full);
}

// sums[r][0..n) += the products of pairs [q0, q1) for the M rows of a: sweeps along b's rows,
// two pairs (four rows) at a time.
template <int M>
HAL_VECTOR_TARGET void in_place_sweep(const Problem& p, const InPlaceB& where, int64_t q0, int64_t q1, int32_t* sums, int64_t ld) {
  int64_t q = q0;
  for (; q + 2 <= q1; q += 2) in_place_pairs<M, 2>(p, where, q, sums, ld);
  if (q < q1) in_place_pairs<M, 1>(p, where, q, sums, ld);
}

// y = float32(sums) * (a_scale * b_scale), every row and column.
HAL_VECTOR_TARGET void scale_sums(const Problem& p, const int32_t* sums, int64_t ld_sums) {
  for (int64_t c = 0; c < p.n; c += 16) {
    const int live = static_cast<int>(std::min<int64_t>(16, p.n - c));
    const ColumnMasks masks(live);
    const float* sb = p.col_scales ? p.sb + c : p.sb_tensor;
    const __m256 sb0 = _mm256_maskload_ps(sb, masks.lo), sb1 = _mm256_maskload_ps(sb + 8, masks.hi);
    for (int64_t r = 0; r < p.m; ++r) {
      const __m256i* s = reinterpret_cast<const __m256i*>(sums + r * ld_sums + c);
      store_scaled_row(_mm256_loadu_si256(s), _mm256_loadu_si256(s + 1), p.sa[p.row_scales ? r : 0], sb0, sb1, masks,
                       live == 16, p.y + r * p.n + c);
    }
  }
}

// int16 b (the Kunlun FC_INT16 path), the same sweep: each pair of rows is interleaved into int16
// pairs and split as packing splits it (b = 256 bh + bl, bl = 0..255, bh = -128..127), the sums
// with bl and with bh kept apart in int32 for kChunk16 pairs at most (see the overflow note at the
// top), then added as lo + 256 hi into int64 totals. A group of 16 columns is two of 8.
template <int M, int P>
HAL_VECTOR_TARGET HAL_ALWAYS_INLINE void group16(const BroadcastPairs<M, P>& a, const int16_t* const* rows, int64_t offset, int32_t* lo,
                                                 int32_t* hi, int64_t ld, int64_t c) {
  const __m256i low_byte = _mm256_set1_epi16(0xff);
#pragma GCC unroll 2
  for (int half = 0; half < 16; half += 8) {
    __m256i bl[P], bh[P];
#pragma GCC unroll 2
    for (int j = 0; j < P; ++j) {  // (b[2q, c], b[2q + 1, c]) for 8 columns
      const __m128i x0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[2 * j] + offset + half));
      const __m128i x1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(rows[2 * j + 1] + offset + half));
      const __m256i v = _mm256_set_m128i(_mm_unpackhi_epi16(x0, x1), _mm_unpacklo_epi16(x0, x1));
      bl[j] = _mm256_and_si256(v, low_byte);
      bh[j] = _mm256_srai_epi16(v, 8);
    }
#pragma GCC unroll 8
    for (int r = 0; r < M; ++r) {
      __m256i* l = reinterpret_cast<__m256i*>(lo + r * ld + c + half);
      __m256i* h = reinterpret_cast<__m256i*>(hi + r * ld + c + half);
      __m256i sl = _mm256_loadu_si256(l), sh = _mm256_loadu_si256(h);
#pragma GCC unroll 2
      for (int j = 0; j < P; ++j) {
        sl = _mm256_add_epi32(sl, _mm256_madd_epi16(a.av[r][j], bl[j]));
        sh = _mm256_add_epi32(sh, _mm256_madd_epi16(a.av[r][j], bh[j]));
      }
      _mm256_storeu_si256(l, sl);
      _mm256_storeu_si256(h, sh);
    }
  }
}

template <int M, int P>
HAL_VECTOR_TARGET __attribute__((noinline)) void in_place_pairs16(const Problem& p, const InPlaceB& where, int64_t q, int32_t* lo,
                                                                 int32_t* hi, int64_t ld) {
  const PairRows<int16_t, P> rows(p, where, q);
  const BroadcastPairs<M, P> a(p, q);
  for (int64_t c = 0; c < where.full; c += 16) group16<M, P>(a, rows.rows, c, lo, hi, ld, c);
  if (where.full < p.n) group16<M, P>(a, rows.tail, 0, lo, hi, ld, where.full);
}

// An int16 thread buffer: int64 totals [kSweepRows][ld], then int32 lo and hi [kSweepRows][ld].
template <int M>
HAL_VECTOR_TARGET void in_place_sweep16(const Problem& p, const InPlaceB& where, int64_t q0, int64_t q1, int32_t* buffer, int64_t ld) {
  int64_t* totals = reinterpret_cast<int64_t*>(buffer);
  int32_t* lo = buffer + 2 * kSweepRows * ld;
  int32_t* hi = lo + kSweepRows * ld;
  for (int64_t c0 = q0; c0 < q1; c0 += kChunk16) {
    const int64_t c1 = std::min(q1, c0 + kChunk16);
    std::fill(lo, lo + M * ld, 0);
    std::fill(hi, hi + M * ld, 0);
    int64_t q = c0;
    for (; q + 2 <= c1; q += 2) in_place_pairs16<M, 2>(p, where, q, lo, hi, ld);
    if (q < c1) in_place_pairs16<M, 1>(p, where, q, lo, hi, ld);
    for (int64_t i = 0; i < M * ld; ++i) totals[i] += int64_t{lo[i]} + int64_t{hi[i]} * 256;
  }
}

// y = float32(totals) * (a_scale * b_scale), sliver by sliver as the packed tiles store theirs.
void scale_totals(const Problem& p, const int32_t* buffer, int64_t ld) {
  const int64_t* totals = reinterpret_cast<const int64_t*>(buffer);
  for (int64_t col0 = 0; col0 < p.n; col0 += p.cols) store_tile(p, 0, static_cast<int>(p.m), col0, totals + col0, ld);
}

using SweepFn = void (*)(const Problem&, const InPlaceB&, int64_t, int64_t, int32_t*, int64_t);
constexpr SweepFn kInPlaceSweep[kSweepRows + 1] = {nullptr, in_place_sweep<1>, in_place_sweep<2>, in_place_sweep<3>, in_place_sweep<4>};
constexpr SweepFn kInPlaceSweep16[kSweepRows + 1] = {nullptr, in_place_sweep16<1>, in_place_sweep16<2>, in_place_sweep16<3>,
                                                     in_place_sweep16<4>};

#endif  // HAL_X86_DISPATCH

// ---- blocking and threads ---------------------------------------------------------------------

template <bool kVector>
void widen_a(const Problem& p, int64_t first, int64_t last) {
#if defined(HAL_X86_DISPATCH)
  if constexpr (kVector) {
    widen_rows_vector(p, first, last);
    return;
  }
#endif
  if (p.split) {
    widen_rows<int16_t>(p, first, last);
  } else {
    widen_rows<int8_t>(p, first, last);
  }
}

// Slivers [first, last) of b, packed one after another from `out`.
template <bool kVector>
void pack_b(const Problem& p, int64_t first, int64_t last, int16_t* out) {
#if defined(HAL_X86_DISPATCH)
  if constexpr (kVector) {
    pack_slivers_vector(p, first, last, out);
    return;
  }
#endif
  for (int64_t j = first; j < last; ++j, out += p.sliver_size()) {
    if (p.split) {
      pack_sliver<int16_t>(p, j, out);
    } else {
      pack_sliver<int8_t>(p, j, out);
    }
  }
}

// Rows [row0, row0 + rows) (rows <= kMR) against sliver j (packed at `sliver`), stored to y.
template <bool kVector>
void tile(const Problem& p, int64_t row0, int rows, int64_t j, const int16_t* sliver) {
  const int64_t col0 = j * p.cols;
  const Tile whole{p.pa + row0 * p.lda, sliver, p.lda, 0, p.pairs};
#if defined(HAL_X86_DISPATCH)
  if constexpr (kVector) {
    if (p.split ? p.pairs <= kDoublePairs16 : p.pairs <= kChunk8) {  // all of it in the tile
      const Epilogue e{p.y + row0 * p.n + col0, p.n, static_cast<int>(std::min(p.cols, p.n - col0)),
                       p.sa + (p.row_scales ? row0 : 0), p.row_scales ? 1 : 0, p.col_scales ? p.sb + col0 : p.sb_tensor, nullptr};
      (p.split ? kTileInt16 : kTileInt8)[rows](whole, e);
      return;
    }
    int64_t acc[kMR * kCols8];
    if (p.split) {
      alignas(32) int64_t totals[kMR * kCols16];
      kTileInt16[rows](whole, raw_sums(totals));
      for (int r = 0; r < rows; ++r) std::copy(totals + r * kCols16, totals + (r + 1) * kCols16, acc + r * kCols8);
    } else {  // int8 past 2 * kChunk8 = 65536 k: int32 sums of chunks added in int64
      std::fill(acc, acc + kMR * kCols8, int64_t{0});
      alignas(32) int32_t sums[kMR * kCols8];
      for (int64_t q0 = 0; q0 < p.pairs; q0 += kChunk8) {
        Tile part = whole;
        part.p0 = q0;
        part.p1 = std::min(p.pairs, q0 + kChunk8);
        kTileInt8[rows](part, raw_sums(sums));
        for (int64_t i = 0; i < rows * kCols8; ++i) acc[i] += sums[i];
      }
    }
    store_tile(p, row0, rows, col0, acc, kCols8);
    return;
  }
#endif
  int64_t acc[kMR * kCols8] = {};
  if (p.split) {
    tile_baseline<true>(whole, rows, acc);
  } else {
    tile_baseline<false>(whole, rows, acc);
  }
  store_tile(p, row0, rows, col0, acc, kCols8);
}

// Cache blocking: a block of slivers (up to kBlockB bytes, in L2 or L3; wide blocks make packing
// read more of each row of b at a time) passes under blocks of rows of a (about kBlockA bytes, in
// L2), each sliver (in L1 for K up to about 500, else L2) serving every row tile of the block
// before the next. K is not blocked: a tile runs over all of it.
constexpr int64_t kBlockB = 1 << 20, kBlockA = 128 << 10;

int64_t block_slivers(const Problem& p) {
  return std::max<int64_t>(1, kBlockB / std::max<int64_t>(1, p.sliver_size() * 2));
}

// Rows [row_first, row_last) (row_first a multiple of kMR) against slivers [first, last). With
// `block` set, each block of slivers is packed there first; otherwise p.pb holds all of b packed.
template <bool kVector>
void run_range(const Problem& p, int64_t row_first, int64_t row_last, int64_t first, int64_t last, int16_t* block) {
  const int64_t block_rows = std::max<int64_t>(1, kBlockA / (p.lda * 2 * kMR)) * kMR;
  for (int64_t j0 = first; j0 < last; j0 += block_slivers(p)) {
    const int64_t j1 = std::min(last, j0 + block_slivers(p));
    const int16_t* packed = p.pb + j0 * p.sliver_size();
    if (block != nullptr) {
      pack_b<kVector>(p, j0, j1, block);
      packed = block;
    }
    for (int64_t r0 = row_first; r0 < row_last; r0 += block_rows) {
      const int64_t r1 = std::min(row_last, r0 + block_rows);
      for (int64_t j = j0; j < j1; ++j) {
        const int16_t* sliver = packed + (j - j0) * p.sliver_size();
        for (int64_t row = r0; row < r1; row += kMR) {
          tile<kVector>(p, row, static_cast<int>(std::min<int64_t>(kMR, r1 - row)), j, sliver);
        }
      }
    }
  }
}

// Below this many multiply-adds per thread a call stays on fewer threads: waking one costs tens
// of microseconds on a loaded host.
constexpr int64_t kMinMacsPerThread = int64_t{2} << 20;
// Work is shared in units that threads take in turn, about this many per thread, so that a thread
// slowed by a busy core (other processes, BLAS or OpenMP threads still spinning) takes fewer.
constexpr int64_t kUnitsPerThread = 4;

#if defined(HAL_X86_DISPATCH)
// A few rows of a (see kInPlaceRows). Threads share b's rows, not its columns, so that each still
// sweeps along whole rows (a column range would be a page per row again): each sums its ranges of
// pairs into its own buffer, and the buffers are added before the scaling.
int32_t qmm_run_in_place(hal_kernel_call* call, Problem& p) {
  const int64_t elem = p.split ? 2 : 1;  // bytes of an element of b
  const int64_t full = p.n / 16 * 16, ld = (p.n + 15) / 16 * 16;
  // int32 per thread: int8 sums [kSweepRows][ld]; int16 int64 totals and int32 lo and hi, as many.
  const int64_t per_thread = kSweepRows * ld * (p.split ? 4 : 1);
  const int64_t threads =
      std::clamp<int64_t>(p.k * p.n * elem / kInPlaceBytesPerThread, 1, std::max<int32_t>(call->num_threads, 1));
  const int64_t widened = (p.m * p.lda + 31) / 32 * 32;  // int16 of widened a, to a 64-byte boundary (int64 totals follow)
  p.pa = scratch_a().get(widened + threads * per_thread * 2);  // widened a, then the threads' int32 buffers
  // b's last columns (K rows of 16 elements), then a row of zeros (n elements, 16 at least)
  char* tail = reinterpret_cast<char*>(scratch_b().get((p.k * 16 + std::max<int64_t>(p.n, 16)) * elem / 2 + 1));
  if (p.pa == nullptr || tail == nullptr) {
    return hal_fail(call, HAL_ERR_INTERNAL, "QuantizedMatMul: out of memory for the packed operands");
  }
  int32_t* buffers = reinterpret_cast<int32_t*>(p.pa + widened);
  widen_rows_vector(p, 0, p.m);
  char* zeros = tail + p.k * 16 * elem;
  std::memset(zeros, 0, static_cast<size_t>(std::max<int64_t>(p.n, 16) * elem));
  const InPlaceB where{tail, zeros, full};
  if (full < p.n) {  // b's last columns, zero-padded to a group of 16
    const char* b = static_cast<const char*>(p.b);
    const size_t live = static_cast<size_t>((p.n - full) * elem), row = static_cast<size_t>(16 * elem);
    for (int64_t k = 0; k < p.k; ++k) {
      std::memcpy(tail + k * row, b + (k * p.n + full) * elem, live);
      std::memset(tail + k * row + live, 0, row - live);
    }
  }
  for (int64_t row = 0; row < p.m; row += kSweepRows) {  // a sweep of b per kSweepRows rows of a
    Problem rows = p;
    rows.m = std::min(kSweepRows, p.m - row);
    rows.pa = p.pa + row * p.lda;
    rows.y = p.y + row * p.n;
    rows.sa = p.sa + (p.row_scales ? row : 0);
    const SweepFn sweep = (p.split ? kInPlaceSweep16 : kInPlaceSweep)[rows.m];
    std::fill(buffers, buffers + threads * per_thread, 0);
    if (threads == 1) {
      sweep(rows, where, 0, p.pairs, buffers, ld);
    } else {
      // Ranges of an even number of pairs, each task summing into its own buffer.
      const int64_t chunks = std::min<int64_t>(threads * kChunksPerThread, (p.pairs + 1) / 2);
      run_chunks(static_cast<int32_t>(threads), chunks, [&](int32_t t, int64_t c) {
        const int64_t q0 = p.pairs * c / chunks / 2 * 2, q1 = c + 1 == chunks ? p.pairs : p.pairs * (c + 1) / chunks / 2 * 2;
        sweep(rows, where, q0, q1, buffers + t * per_thread, ld);
      });
      for (int64_t t = 1; t < threads; ++t) {
        if (p.split) {
          auto* totals = reinterpret_cast<int64_t*>(buffers);
          const auto* other = reinterpret_cast<const int64_t*>(buffers + t * per_thread);
          for (int64_t i = 0; i < rows.m * ld; ++i) totals[i] += other[i];
        } else {
          for (int64_t i = 0; i < rows.m * ld; ++i) buffers[i] += buffers[t * per_thread + i];
        }
      }
    }
    if (p.split) {
      scale_totals(rows, buffers, ld);
    } else {
      scale_sums(rows, buffers, ld);
    }
  }
  return HAL_OK;
}
#endif

template <bool kVector>
int32_t qmm_run(hal_kernel_call* call, Problem& p) {
#if defined(HAL_X86_DISPATCH)
  if constexpr (kVector) {
    // int16 totals go through int64: any K; int8 sums stay int32, so at most kChunk8 pairs.
    if (p.m <= kInPlaceRows && (p.split || p.pairs <= kChunk8)) return qmm_run_in_place(call, p);
  }
#endif
  // Units are groups of slivers (each unit packs its slivers of b block by block and runs all the
  // rows over them) or, when there are too few slivers to share, groups of rows (b packed whole
  // here first, each unit widening its rows of a).
  const int64_t macs = p.m * p.n * std::max<int64_t>(p.k, 1);
  const int64_t threads = std::clamp<int64_t>(macs / kMinMacsPerThread, 1, std::max<int32_t>(call->num_threads, 1));
  const int64_t panels = (p.m + kMR - 1) / kMR;
  const bool by_rows = threads > 1 && p.slivers < 2 * threads && panels >= threads;
  const int64_t wanted = threads == 1 ? 1 : threads * kUnitsPerThread;
  const int64_t unit = by_rows ? (panels + wanted - 1) / wanted : (p.slivers + wanted - 1) / wanted;
  const int64_t units = by_rows ? (panels + unit - 1) / unit : (p.slivers + unit - 1) / unit;
  const int64_t block = std::min(block_slivers(p), unit);  // slivers of one thread's block buffer
  p.pa = scratch_a().get(p.m * p.lda);
  p.pb = scratch_b().get((by_rows ? p.slivers : threads * block) * p.sliver_size());
  if (p.pa == nullptr || p.pb == nullptr) {
    return hal_fail(call, HAL_ERR_INTERNAL, "QuantizedMatMul: out of memory for the packed operands");
  }
  if (by_rows) {
    pack_b<kVector>(p, 0, p.slivers, p.pb);
  } else {
    widen_a<kVector>(p, 0, p.m);
  }
  if (threads == 1) {
    run_range<kVector>(p, 0, p.m, 0, p.slivers, p.pb);
    return HAL_OK;
  }
  run_chunks(static_cast<int32_t>(threads), units, [&](int32_t t, int64_t u) {  // t: the task's block buffer
    if (by_rows) {
      const int64_t first = u * unit * kMR, last = std::min(p.m, (u + 1) * unit * kMR);
      widen_a<kVector>(p, first, last);
      run_range<kVector>(p, first, last, 0, p.slivers, nullptr);
    } else {
      run_range<kVector>(p, 0, p.m, u * unit, std::min(p.slivers, (u + 1) * unit), p.pb + t * block * p.sliver_size());
    }
  });
  return HAL_OK;
}

int32_t qmm_compute(hal_kernel_call* call) {
  struct Trim {  // on every way out
    ~Trim() {
      scratch_a().trim();
      scratch_b().trim();
    }
  } trim;
  const hal_tensor &a = call->inputs[0], &b = call->inputs[1];
  Problem p{};
  p.a = a.data;
  p.b = b.data;
  p.sa = static_cast<const float*>(call->inputs[2].data);
  p.sb = static_cast<const float*>(call->inputs[3].data);
  p.row_scales = hal_numel(&call->inputs[2]) > 1;
  p.col_scales = hal_numel(&call->inputs[3]) > 1;
  p.y = static_cast<float*>(call->outputs[0].data);
  p.m = rows_of(a);
  p.k = a.shape[a.ndim - 1];
  p.n = b.shape[1];
  if (p.m == 0 || p.n == 0) return HAL_OK;
  std::fill(p.sb_tensor, p.sb_tensor + kCols8, p.sb[0]);  // b_scale has 1 or n >= 1 values here
  p.pairs = (p.k + 1) / 2;
  p.split = a.dtype == HAL_INT16;
  p.cols = p.split ? kCols16 : kCols8;
  p.slivers = (p.n + p.cols - 1) / p.cols;
  // Rows a multiple of 4 KiB apart would put a tile's six rows of a in one L1 set.
  p.lda = 2 * p.pairs + ((4 * p.pairs) % 4096 == 0 ? 32 : 0);
  return cpu_has_avx2_fma_f16c() ? qmm_run<true>(call, p) : qmm_run<false>(call, p);
}

}  // namespace

HAL_REGISTER_KERNEL("com.hal", "QuantizedMatMul", "cpu,ascend,kunlun", "int8,int16", qmm_infer, qmm_compute);

}  // namespace hal::kernels
