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

#include <vector>

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

// ---- packing ------------------------------------------------------------------------------------
// a: rows of K widened to int16 and padded to an even Kp = 2P. b: for each block of 8 columns and
// each pair p of k, 16 int16 [b[2p][c], b[2p+1][c]] for c in the block, so that one madd of a
// broadcast pair (a[2p], a[2p+1]) gives 8 columns' pair sums. For int16, b is stored as its two
// byte planes (hi, lo); for int8 only `lo` is used and holds b itself.
constexpr int64_t kCols = 8;   // columns per vector
constexpr int64_t kRows = 4;   // rows per micro tile

template <class T>
std::vector<int16_t> pack_a(const T* a, int64_t m, int64_t k, int64_t kp) {
  std::vector<int16_t> out(static_cast<size_t>(m * kp), 0);
  for (int64_t r = 0; r < m; ++r) {
    for (int64_t i = 0; i < k; ++i) out[r * kp + i] = a[r * k + i];
  }
  return out;
}

template <class T>
void pack_b(const T* b, int64_t k, int64_t n, int64_t pairs, bool split, std::vector<int16_t>& lo, std::vector<int16_t>& hi) {
  int64_t blocks = (n + kCols - 1) / kCols;
  lo.assign(static_cast<size_t>(blocks * pairs * 2 * kCols), 0);
  if (split) hi.assign(lo.size(), 0);
  for (int64_t j = 0; j < blocks; ++j) {
    for (int64_t p = 0; p < pairs; ++p) {
      int16_t* l = &lo[static_cast<size_t>((j * pairs + p) * 2 * kCols)];
      int16_t* h = split ? &hi[static_cast<size_t>((j * pairs + p) * 2 * kCols)] : nullptr;
      for (int64_t c = 0; c < kCols; ++c) {
        int64_t col = j * kCols + c;
        for (int64_t t = 0; t < 2; ++t) {
          int64_t row = 2 * p + t;
          int32_t v = (col < n && row < k) ? static_cast<int32_t>(b[row * n + col]) : 0;
          if (split) {
            l[2 * c + t] = static_cast<int16_t>(v & 0xff);        // 0..255
            h[2 * c + t] = static_cast<int16_t>((v - (v & 0xff)) / 256);  // -128..127
          } else {
            l[2 * c + t] = static_cast<int16_t>(v);
          }
        }
      }
    }
  }
}

struct Packed {
  const int16_t* a;  // [m][kp]
  const int16_t* lo;
  const int16_t* hi;  // null for int8
  int64_t m, n, kp, pairs, blocks;
};

// Pairs of k accumulated in int32 before they are added into int64 (see the overflow note).
int64_t pairs_per_flush(bool split) { return split ? 128 : 32768; }

// acc[r][c] += a[row0 + r] . b[:, 8 j + c] over all k, for R rows and one block of 8 columns.
template <int R, bool kSplit>
HAL_VECTOR_TARGET void tile_vector(const Packed& p, int64_t row0, int64_t j, int64_t* acc) {
  const int64_t flush = pairs_per_flush(kSplit);
  const int16_t* lo = p.lo + j * p.pairs * 2 * kCols;
  const int16_t* hi = kSplit ? p.hi + j * p.pairs * 2 * kCols : nullptr;
  for (int64_t p0 = 0; p0 < p.pairs; p0 += flush) {
    int64_t p1 = std::min(p.pairs, p0 + flush);
    __m256i sum_lo[R], sum_hi[R];
    for (int r = 0; r < R; ++r) sum_lo[r] = sum_hi[r] = _mm256_setzero_si256();
    for (int64_t q = p0; q < p1; ++q) {
      __m256i bl = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lo + q * 2 * kCols));
      __m256i bh = kSplit ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(hi + q * 2 * kCols)) : bl;
      for (int r = 0; r < R; ++r) {
        int32_t pair;
        std::memcpy(&pair, p.a + (row0 + r) * p.kp + 2 * q, sizeof(pair));
        __m256i av = _mm256_set1_epi32(pair);
        sum_lo[r] = _mm256_add_epi32(sum_lo[r], _mm256_madd_epi16(av, bl));
        if (kSplit) sum_hi[r] = _mm256_add_epi32(sum_hi[r], _mm256_madd_epi16(av, bh));
      }
    }
    for (int r = 0; r < R; ++r) {
      alignas(32) int32_t l[kCols], h[kCols];
      _mm256_store_si256(reinterpret_cast<__m256i*>(l), sum_lo[r]);
      _mm256_store_si256(reinterpret_cast<__m256i*>(h), sum_hi[r]);
      for (int64_t c = 0; c < kCols; ++c) acc[r * kCols + c] += kSplit ? int64_t{h[c]} * 256 + l[c] : int64_t{l[c]};
    }
  }
}

template <int R, bool kSplit>
void tile_baseline(const Packed& p, int64_t row0, int64_t j, int64_t* acc) {
  const int16_t* lo = p.lo + j * p.pairs * 2 * kCols;
  const int16_t* hi = kSplit ? p.hi + j * p.pairs * 2 * kCols : nullptr;
  for (int r = 0; r < R; ++r) {
    const int16_t* a = p.a + (row0 + r) * p.kp;
    for (int64_t c = 0; c < kCols; ++c) {
      int64_t sum = 0;
      for (int64_t q = 0; q < p.pairs; ++q) {
        for (int64_t t = 0; t < 2; ++t) {
          int64_t b = kSplit ? int64_t{hi[q * 2 * kCols + 2 * c + t]} * 256 + lo[q * 2 * kCols + 2 * c + t]
                             : int64_t{lo[q * 2 * kCols + 2 * c + t]};
          sum += int64_t{a[2 * q + t]} * b;
        }
      }
      acc[r * kCols + c] += sum;
    }
  }
}

template <bool kSplit>
void tile(const Packed& p, int64_t row0, int rows, int64_t j, int64_t* acc) {
  const bool vector = cpu_has_avx2_fma_f16c();
  switch (rows) {
    case 4: (vector ? tile_vector<4, kSplit> : tile_baseline<4, kSplit>)(p, row0, j, acc); break;
    case 3: (vector ? tile_vector<3, kSplit> : tile_baseline<3, kSplit>)(p, row0, j, acc); break;
    case 2: (vector ? tile_vector<2, kSplit> : tile_baseline<2, kSplit>)(p, row0, j, acc); break;
    default: (vector ? tile_vector<1, kSplit> : tile_baseline<1, kSplit>)(p, row0, j, acc);
  }
}

int32_t qmm_compute(hal_kernel_call* call) {
  const hal_tensor &a = call->inputs[0], &b = call->inputs[1];
  const float* sa = static_cast<const float*>(call->inputs[2].data);
  const float* sb = static_cast<const float*>(call->inputs[3].data);
  const bool row_scales = hal_numel(&call->inputs[2]) > 1, col_scales = hal_numel(&call->inputs[3]) > 1;
  float* y = static_cast<float*>(call->outputs[0].data);
  const int64_t m = rows_of(a), k = a.shape[a.ndim - 1], n = b.shape[1];
  if (m == 0 || n == 0) return HAL_OK;
  const int64_t pairs = (k + 1) / 2, kp = 2 * pairs;
  const bool split = a.dtype == HAL_INT16;
  std::vector<int16_t> packed_a, lo, hi;
  if (split) {
    packed_a = pack_a(static_cast<const int16_t*>(a.data), m, k, kp);
    pack_b(static_cast<const int16_t*>(b.data), k, n, pairs, true, lo, hi);
  } else {
    packed_a = pack_a(static_cast<const int8_t*>(a.data), m, k, kp);
    pack_b(static_cast<const int8_t*>(b.data), k, n, pairs, false, lo, hi);
  }
  const Packed p{packed_a.data(), lo.data(), split ? hi.data() : nullptr, m, n, kp, pairs, (n + kCols - 1) / kCols};
  // Cache blocking: a group of kGroupRows rows of a stays in L2 while every 8-column block of b
  // (K * 32 bytes, twice that for int16) passes over it, each block reused by all its row tiles.
  // Items are (row group, column range) pairs: column ranges split the work when there are fewer
  // row groups than threads (a GEMV, say), so each element of y is written by one thread.
  constexpr int64_t kGroupRows = 64;
  const int64_t groups = (m + kGroupRows - 1) / kGroupRows;
  const int64_t threads = std::max<int32_t>(call->num_threads, 1);
  const int64_t splits = groups >= threads ? 1 : std::min<int64_t>(p.blocks, (threads + groups - 1) / groups);
  parallel_for(groups * splits, kGroupRows * std::max<int64_t>(k, 1) * n / splits / 8, call->num_threads,
               [&](int64_t begin, int64_t end) {
    int64_t acc[kRows * kCols];
    for (int64_t item = begin; item < end; ++item) {
      int64_t group = item / splits, split_index = item % splits;
      int64_t first_row = group * kGroupRows, last_row = std::min(m, first_row + kGroupRows);
      int64_t first_block = p.blocks * split_index / splits, last_block = p.blocks * (split_index + 1) / splits;
      for (int64_t j = first_block; j < last_block; ++j) {
        for (int64_t row0 = first_row; row0 < last_row; row0 += kRows) {
          int rows = static_cast<int>(std::min<int64_t>(kRows, last_row - row0));
          std::fill(acc, acc + kRows * kCols, int64_t{0});
          if (split) {
            tile<true>(p, row0, rows, j, acc);
          } else {
            tile<false>(p, row0, rows, j, acc);
          }
          for (int r = 0; r < rows; ++r) {
            int64_t row = row0 + r;
            float scale_a = sa[row_scales ? row : 0];
            for (int64_t c = 0; c < kCols && j * kCols + c < n; ++c) {
              int64_t col = j * kCols + c;
              float scale = scale_a * sb[col_scales ? col : 0];
              y[row * n + col] = static_cast<float>(acc[r * kCols + c]) * scale;
            }
          }
        }
      }
    }
  });
  return HAL_OK;
}

}  // namespace

HAL_REGISTER_KERNEL("com.hal", "QuantizedMatMul", "cpu,ascend,kunlun", "int8,int16", qmm_infer, qmm_compute);

}  // namespace hal::kernels
