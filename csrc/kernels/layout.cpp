// The layouts Ascend's cube unit reads, and back (com.hal::ToNC1HWC0 / FromNC1HWC0 /
// ToFractalNZ / FromFractalNZ). Pure data movement, so any 1-, 2- or 4-byte dtype; the padding
// is zeros. CANN documents both (aclFormat, "Data Formats" in the CANN developer guide):
//   NC1HWC0: (N, C, H, W) -> (N, C1, H, W, C0), C1 = ceil(C / C0), C0 = 16 for 16-bit types.
//   FRACTAL_NZ: (..., M, N) -> (..., N1, M1, M0, N0): 16 x 16 fractals, the fractals column-major
//   (N1 outer), the elements in each row-major. M1 = ceil(M / M0), N1 = ceil(N / N0).
//
// Both are bound by memory bandwidth, so the loops keep the read and the write streams sequential
// and move whole vectors:
//   NC1HWC0 is a transpose of each (n, c1) block, C0 planes of HW elements <-> HW rows of C0. With
//   AVX2 it goes 8 channels x 8 positions (16-bit: 8 x 16, int8: 16 x 32) at a time: one vector
//   from each plane, transposed in registers (unpack / shuffle / permute), written as whole C0
//   rows, so that the blocked tensor is written (read) front to back and each plane is read
//   (written) front to back. Work is split into items of 512 positions of a block, so that two
//   threads share even a single block.
//   FRACTAL_NZ is a copy of n0-element pieces: a band of m0-row blocks is copied 4 (8) fractals
//   at a time, each fractal strip written (read) front to back and the rows read (written) in
//   runs of 4 (8) pieces.
// Outputs of 16 MiB or more that are already in memory (a caller reusing a buffer) are written
// with streaming stores where each output line is filled by consecutive stores; those skip reading
// the destination's lines before overwriting them. Without AVX2 (or on other CPUs) the same loops
// run as portable code: a cache-blocked scalar transpose and memcpy pieces.
#include <cstring>

#if defined(__linux__)
#include <sys/mman.h>
#include <unistd.h>
#endif

#include "ops/checks.h"
#include "ops/kernel_support.h"

#if defined(HAL_X86_DISPATCH)
#include <immintrin.h>
#endif

namespace hal::kernels {
namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

size_t item_size(int32_t dtype) { return dtype == HAL_FLOAT32 ? 4 : dtype == HAL_INT8 ? 1 : 2; }

int32_t positive_attr(hal_kernel_call* call, const char* op, const char* name, int64_t fallback, int64_t* out) {
  *out = hal_attr_int(call, name, fallback);
  if (*out <= 0 || *out > 4096) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "%s: %s must be in [1, 4096], got %lld", op, name, static_cast<long long>(*out));
  }
  return HAL_OK;
}

// Outputs of kStreamingBytes (kernel_support.h) and more are written with streaming stores, where
// the destination is resident and 16-byte aligned. Below it, ordinary stores measured faster here
// too (4 MiB: 0.19 ms against 0.25 ms).

// Whether the pages of [p, p + bytes) are already in memory (sampled: first, middle, last). A
// new numpy array of this size is a fresh mapping that the kernel zeroes page by page on first
// write, leaving each page in the cache; streaming stores then have to flush those lines and ran
// up to 3x slower (on Zen 3) than ordinary stores, which overwrite them in the cache.
bool resident(const void* p, int64_t bytes) {
#if defined(__linux__)
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t start = reinterpret_cast<uintptr_t>(p);
  for (uintptr_t at : {start, start + static_cast<uintptr_t>(bytes / 2), start + static_cast<uintptr_t>(bytes - 1)}) {
    unsigned char in_core = 0;
    if (mincore(reinterpret_cast<void*>(at & ~(page - 1)), 1, &in_core) != 0 || !(in_core & 1)) return false;
  }
  return true;
#else
  (void)p;
  (void)bytes;
  return false;
#endif
}

// How the vector paths store: ordinary stores, or streaming stores to 32- or 16-byte aligned
// addresses (the callers check that every vector store is that aligned).
enum StoreMode : int { kPlain = 0, kStream32 = 1, kStream16 = 2 };

// stride_bytes: every vector store lands a multiple of it after dst.
int store_mode(const void* dst, int64_t bytes, int64_t stride_bytes) {
  auto address = reinterpret_cast<uintptr_t>(dst);
  if (bytes < kStreamingBytes || address % 16 != 0 || stride_bytes % 16 != 0 || !resident(dst, bytes)) return kPlain;
  return address % 32 == 0 && stride_bytes % 32 == 0 ? kStream32 : kStream16;
}

// ---- NC1HWC0 ----------------------------------------------------------------------------------

int32_t to_nc1hwc0_infer(hal_kernel_call* call) {
  HAL_CHECK(check_arity(call, "ToNC1HWC0", 1, 1));
  const hal_tensor& x = call->inputs[0];
  if (x.ndim != 4) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "ToNC1HWC0: x must be NCHW (4 dimensions), got shape %s", shape_string(x).c_str());
  }
  int64_t c0;
  HAL_CHECK(positive_attr(call, "ToNC1HWC0", "c0", 16, &c0));
  int64_t shape[5] = {x.shape[0], ceil_div(x.shape[1], c0), x.shape[2], x.shape[3], c0};
  hal_set_output(call, 0, x.dtype, 5, shape);
  return HAL_OK;
}

int32_t from_nc1hwc0_infer(hal_kernel_call* call) {
  HAL_CHECK(check_arity(call, "FromNC1HWC0", 1, 1));
  const hal_tensor& x = call->inputs[0];
  if (x.ndim != 5) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "FromNC1HWC0: x must be NC1HWC0 (5 dimensions), got shape %s",
                    shape_string(x).c_str());
  }
  int64_t channels = hal_attr_int(call, "channels", -1), c1 = x.shape[1], c0 = x.shape[4];
  if (channels < 0 || channels > c1 * c0 || (c0 > 0 && ceil_div(channels, c0) != c1)) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT,
                    "FromNC1HWC0: channels (the original C) must satisfy ceil(C / C0) = C1 for shape %s, got %lld",
                    shape_string(x).c_str(), static_cast<long long>(channels));
  }
  int64_t shape[4] = {x.shape[0], channels, x.shape[2], x.shape[3]};
  hal_set_output(call, 0, x.dtype, 4, shape);
  return HAL_OK;
}

// (N, C, HW) <-> (N, C1, HW, C0). Work is split into items of kChunk positions of one (n, c1)
// block, in output order, so that threads get contiguous ranges even when N * C1 is small.
constexpr int64_t kChunk = 512;

struct Nc1hwc0 {
  const void* in;
  void* out;
  int64_t n, c, hw, c0, c1, chunks;
};

// One piece of a block: positions [i0, i1) of the `channels` planes starting at `plain` (HW
// apart) and the rows of c0 starting at `blocked`; channels [channels, c0) are padding.
template <class E>
struct Block {
  E* plain;
  E* blocked;
  int64_t channels, hw, c0;
};

// The portable transpose: 64 positions at a time, one plane at a time (reads sequential, writes
// c0 apart within a few KiB that stay in L1).
template <class E, bool kTo>
HAL_ALWAYS_INLINE void block_generic(const Block<E>& b, int64_t i0, int64_t i1) {
  constexpr int64_t kTile = 64;
  for (int64_t t = i0; t < i1; t += kTile) {
    const int64_t tile = std::min(kTile, i1 - t);
    E* rows = b.blocked + t * b.c0;
    for (int64_t k = 0; k < b.channels; ++k) {
      E* plane = b.plain + k * b.hw + t;
      if (kTo) {
        for (int64_t i = 0; i < tile; ++i) rows[i * b.c0 + k] = plane[i];
      } else {
        for (int64_t i = 0; i < tile; ++i) plane[i] = rows[i * b.c0 + k];
      }
    }
    if (kTo && b.channels < b.c0) {
      for (int64_t i = 0; i < tile; ++i) std::fill(rows + i * b.c0 + b.channels, rows + (i + 1) * b.c0, E{0});
    }
  }
}

template <class E, bool kTo, class BlockFn>
HAL_ALWAYS_INLINE void nc1hwc0_items(const Nc1hwc0& s, int64_t begin, int64_t end, const BlockFn& block_fn) {
  E* plain = static_cast<E*>(const_cast<void*>(kTo ? s.in : s.out));
  E* blocked = static_cast<E*>(kTo ? s.out : const_cast<void*>(s.in));
  for (int64_t item = begin; item < end;) {
    const int64_t blk = item / s.chunks, first = item % s.chunks;
    // The items of one block in this range, done as one span.
    const int64_t last = std::min(s.chunks, first + (end - item));
    const int64_t batch = blk / s.c1, group = blk % s.c1;
    Block<E> b{plain + (batch * s.c + group * s.c0) * s.hw, blocked + blk * s.hw * s.c0, std::min(s.c0, s.c - group * s.c0),
               s.hw, s.c0};
    block_fn(b, first * kChunk, std::min(s.hw, last * kChunk));
    item += last - first;
  }
}

template <class E, bool kTo>
void nc1hwc0_baseline(const Nc1hwc0& s, int64_t begin, int64_t end) {
  nc1hwc0_items<E, kTo>(s, begin, end, [](const Block<E>& b, int64_t i0, int64_t i1) { block_generic<E, kTo>(b, i0, i1); });
}

#if defined(HAL_X86_DISPATCH)

template <int kMode>
HAL_VECTOR_TARGET HAL_ALWAYS_INLINE void store256(void* p, __m256i v) {
  if (kMode == kStream32) {
    _mm256_stream_si256(static_cast<__m256i*>(p), v);
  } else if (kMode == kStream16) {
    _mm_stream_si128(static_cast<__m128i*>(p), _mm256_castsi256_si128(v));
    _mm_stream_si128(static_cast<__m128i*>(p) + 1, _mm256_extracti128_si256(v, 1));
  } else {
    _mm256_storeu_si256(static_cast<__m256i*>(p), v);
  }
}

template <int kMode>
HAL_VECTOR_TARGET HAL_ALWAYS_INLINE void store128(void* p, __m128i v) {
  if (kMode == kPlain) {
    _mm_storeu_si128(static_cast<__m128i*>(p), v);
  } else {
    _mm_stream_si128(static_cast<__m128i*>(p), v);
  }
}

HAL_VECTOR_TARGET HAL_ALWAYS_INLINE __m256i load256(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }
HAL_VECTOR_TARGET HAL_ALWAYS_INLINE __m128i load128(const void* p) { return _mm_loadu_si128(static_cast<const __m128i*>(p)); }

// r[j][i] -> r[i][j] for an 8 x 8 matrix of 32-bit elements, one row per register.
HAL_VECTOR_TARGET HAL_ALWAYS_INLINE void transpose8x32(__m256i (&r)[8]) {
  __m256 a[8], t[8];
  for (int j = 0; j < 8; ++j) a[j] = _mm256_castsi256_ps(r[j]);
  for (int j = 0; j < 8; j += 2) {
    t[j] = _mm256_unpacklo_ps(a[j], a[j + 1]);      // a0 b0 a1 b1 | a4 b4 a5 b5
    t[j + 1] = _mm256_unpackhi_ps(a[j], a[j + 1]);  // a2 b2 a3 b3 | a6 b6 a7 b7
  }
  for (int j = 0; j < 8; j += 4) {
    a[j] = _mm256_shuffle_ps(t[j], t[j + 2], 0x44);      // a0 b0 c0 d0 | a4 b4 c4 d4
    a[j + 1] = _mm256_shuffle_ps(t[j], t[j + 2], 0xEE);  // a1 b1 c1 d1 | a5 ...
    a[j + 2] = _mm256_shuffle_ps(t[j + 1], t[j + 3], 0x44);
    a[j + 3] = _mm256_shuffle_ps(t[j + 1], t[j + 3], 0xEE);
  }
  for (int j = 0; j < 4; ++j) {
    r[j] = _mm256_castps_si256(_mm256_permute2f128_ps(a[j], a[j + 4], 0x20));
    r[j + 4] = _mm256_castps_si256(_mm256_permute2f128_ps(a[j], a[j + 4], 0x31));
  }
}

// The same for 16-bit elements, in each 128-bit lane separately: lane 0 of the rows holds one
// 8 x 8 matrix, lane 1 another.
HAL_VECTOR_TARGET HAL_ALWAYS_INLINE void transpose8x16_lanes(__m256i (&r)[8]) {
  __m256i t[8], u[8];
  for (int j = 0; j < 8; j += 2) {
    t[j] = _mm256_unpacklo_epi16(r[j], r[j + 1]);      // a0 b0 a1 b1 a2 b2 a3 b3
    t[j + 1] = _mm256_unpackhi_epi16(r[j], r[j + 1]);  // a4 b4 ... a7 b7
  }
  for (int j = 0; j < 8; j += 4) {
    u[j] = _mm256_unpacklo_epi32(t[j], t[j + 2]);          // a0 b0 c0 d0 a1 b1 c1 d1
    u[j + 1] = _mm256_unpackhi_epi32(t[j], t[j + 2]);      // a2 .. a3 ..
    u[j + 2] = _mm256_unpacklo_epi32(t[j + 1], t[j + 3]);  // a4 .. a5 ..
    u[j + 3] = _mm256_unpackhi_epi32(t[j + 1], t[j + 3]);  // a6 .. a7 ..
  }
  for (int j = 0; j < 4; ++j) {
    r[2 * j] = _mm256_unpacklo_epi64(u[j], u[j + 4]);
    r[2 * j + 1] = _mm256_unpackhi_epi64(u[j], u[j + 4]);
  }
}

// 16 x 16 for 8-bit elements, in each 128-bit lane separately.
HAL_VECTOR_TARGET HAL_ALWAYS_INLINE void transpose16x8_lanes(__m256i (&r)[16]) {
  __m256i t[16], u[16];
  for (int p = 0; p < 8; ++p) {  // byte pairs of rows 2p, 2p + 1: columns 0..7, then 8..15
    t[2 * p] = _mm256_unpacklo_epi8(r[2 * p], r[2 * p + 1]);
    t[2 * p + 1] = _mm256_unpackhi_epi8(r[2 * p], r[2 * p + 1]);
  }
  for (int q = 0; q < 4; ++q) {  // 4-byte groups of rows 4q..4q+3: columns 0..3, 4..7, 8..11, 12..15
    u[4 * q] = _mm256_unpacklo_epi16(t[4 * q], t[4 * q + 2]);
    u[4 * q + 1] = _mm256_unpackhi_epi16(t[4 * q], t[4 * q + 2]);
    u[4 * q + 2] = _mm256_unpacklo_epi16(t[4 * q + 1], t[4 * q + 3]);
    u[4 * q + 3] = _mm256_unpackhi_epi16(t[4 * q + 1], t[4 * q + 3]);
  }
  for (int o = 0; o < 2; ++o) {  // 8-byte groups of rows 8o..8o+7: columns 2c, 2c + 1 in t[8o + 2c], t[8o + 2c + 1]
    for (int c = 0; c < 4; ++c) {
      t[8 * o + 2 * c] = _mm256_unpacklo_epi32(u[8 * o + c], u[8 * o + 4 + c]);
      t[8 * o + 2 * c + 1] = _mm256_unpackhi_epi32(u[8 * o + c], u[8 * o + 4 + c]);
    }
  }
  for (int c = 0; c < 8; ++c) {  // whole columns 2c and 2c + 1
    r[2 * c] = _mm256_unpacklo_epi64(t[c], t[8 + c]);
    r[2 * c + 1] = _mm256_unpackhi_epi64(t[c], t[8 + c]);
  }
}

// The register transpose for each element size: kGroup channels x kStep positions at a time.
// 32-bit: 8 x 8, register j is position j. 16- and 8-bit: two transposes, one per 128-bit lane,
// register j is position j in lane 0 and position j + kStep / 2 in lane 1.
template <class E>
struct Unit;
template <>
struct Unit<uint32_t> {
  static constexpr int kGroup = 8, kStep = 8;
  HAL_VECTOR_TARGET HAL_ALWAYS_INLINE static void transpose(__m256i (&r)[kGroup]) { transpose8x32(r); }
};
template <>
struct Unit<uint16_t> {
  static constexpr int kGroup = 8, kStep = 16;
  HAL_VECTOR_TARGET HAL_ALWAYS_INLINE static void transpose(__m256i (&r)[kGroup]) { transpose8x16_lanes(r); }
};
template <>
struct Unit<uint8_t> {
  static constexpr int kGroup = 16, kStep = 32;
  HAL_VECTOR_TARGET HAL_ALWAYS_INLINE static void transpose(__m256i (&r)[kGroup]) { transpose16x8_lanes(r); }
};

// Streaming stores into the blocked tensor go through a local tile of kStep rows when the rows
// have at most this many elements: it is copied out front to back, so that each output line is
// completed by consecutive stores (write-combining buffers are few). Ordinary stores go directly.
constexpr int64_t kMaxStagedC0 = 64;

// c0 a multiple of kGroup.
template <class E, bool kTo, int kMode, bool kStage>
HAL_VECTOR_TARGET HAL_ALWAYS_INLINE void block_avx2(const Block<E>& b, int64_t i0, int64_t i1) {
  using U = Unit<E>;
  constexpr int kGroup = U::kGroup, kStep = U::kStep, kHalf = kStep / 2;
  constexpr bool kWholeRows = sizeof(E) == 4;  // a register is one row (else two half rows)
  const int64_t c0 = b.c0, hw = b.hw;
  alignas(32) E tile[kStage ? kStep * kMaxStagedC0 : 1];
  int64_t i = i0;
  for (; i + kStep <= i1; i += kStep) {
    E* rows = b.blocked + i * c0;
    for (int64_t g = 0; g < c0; g += kGroup) {
      const int64_t valid = std::min<int64_t>(kGroup, b.channels - g);
      __m256i r[kGroup];
      if (kTo) {
        E* dst = (kStage ? tile : rows) + g;
        if (valid > 0) {
          const E* plane = b.plain + g * hw + i;
          for (int j = 0; j < kGroup; ++j) r[j] = j < valid ? load256(plane + j * hw) : _mm256_setzero_si256();
          U::transpose(r);
        } else {
          for (int j = 0; j < kGroup; ++j) r[j] = _mm256_setzero_si256();
        }
        for (int j = 0; j < kGroup; ++j) {
          if (kWholeRows) {
            store256<kStage ? kPlain : kMode>(dst + j * c0, r[j]);
          } else {
            store128<kStage ? kPlain : kMode>(dst + j * c0, _mm256_castsi256_si128(r[j]));
            store128<kStage ? kPlain : kMode>(dst + (j + kHalf) * c0, _mm256_extracti128_si256(r[j], 1));
          }
        }
      } else {
        if (valid <= 0) break;
        for (int j = 0; j < kGroup; ++j) {
          const E* src = rows + j * c0 + g;
          r[j] = kWholeRows ? load256(src) : _mm256_inserti128_si256(_mm256_castsi128_si256(load128(src)), load128(src + kHalf * c0), 1);
        }
        U::transpose(r);
        E* plane = b.plain + g * hw + i;
        for (int j = 0; j < valid; ++j) store256<kMode>(plane + j * hw, r[j]);
      }
    }
    if (kTo && kStage) {
      constexpr int kPerVector = 32 / sizeof(E);
      for (int64_t k = 0; k < kStep * c0; k += kPerVector) store256<kMode>(rows + k, _mm256_load_si256(reinterpret_cast<const __m256i*>(tile + k)));
    }
  }
  if (i < i1) block_generic<E, kTo>(b, i, i1);
}

template <class E, bool kTo, int kMode>
HAL_VECTOR_TARGET void nc1hwc0_vector(const Nc1hwc0& s, int64_t begin, int64_t end) {
  const bool vector = s.c0 % Unit<E>::kGroup == 0, stage = kTo && kMode != kPlain && s.c0 <= kMaxStagedC0;
  nc1hwc0_items<E, kTo>(s, begin, end, [&](const Block<E>& b, int64_t i0, int64_t i1) HAL_VECTOR_TARGET {
    if (!vector) {
      block_generic<E, kTo>(b, i0, i1);
    } else if (stage) {
      block_avx2<E, kTo, kMode, true>(b, i0, i1);
    } else {
      block_avx2<E, kTo, kMode, false>(b, i0, i1);
    }
  });
  if (kMode != kPlain) _mm_sfence();  // streaming stores are weakly ordered: publish them before returning
}

#endif  // HAL_X86_DISPATCH

template <class E, bool kTo>
void nc1hwc0(const Nc1hwc0& s, int32_t threads) {
  using Range = void (*)(const Nc1hwc0&, int64_t, int64_t);
  Range range = &nc1hwc0_baseline<E, kTo>;
#if defined(HAL_X86_DISPATCH)
  if (cpu_has_avx2_fma_f16c()) {
    // Streaming stores only into the blocked tensor, whose rows (c0 elements) the vector stores
    // fill front to back. Into the planes they would leave C0 lines at a time half written and
    // run 2-4x slower than ordinary stores.
    const int64_t row_bytes = static_cast<int64_t>(sizeof(E)) * s.c0;
    const int mode = kTo && s.c0 % Unit<E>::kGroup == 0 ? store_mode(s.out, s.n * s.c1 * s.hw * row_bytes, row_bytes) : kPlain;
    range = mode == kStream32 ? &nc1hwc0_vector<E, kTo, kStream32>
          : mode == kStream16 ? &nc1hwc0_vector<E, kTo, kStream16>
                              : &nc1hwc0_vector<E, kTo, kPlain>;
  }
#endif
  parallel_for(s.n * s.c1 * s.chunks, std::min(kChunk, s.hw) * s.c0, threads, [&](int64_t begin, int64_t end) { range(s, begin, end); });
}

template <bool kToBlocked>
int32_t nc1hwc0_compute(hal_kernel_call* call) {
  const hal_tensor& x = call->inputs[0];
  const hal_tensor& plain = kToBlocked ? x : call->outputs[0];
  const hal_tensor& blocked = kToBlocked ? call->outputs[0] : x;
  int64_t n = plain.shape[0], c = plain.shape[1], hw = plain.shape[2] * plain.shape[3], c0 = blocked.shape[4];
  if (n == 0 || c == 0 || hw == 0) return HAL_OK;
  Nc1hwc0 s{x.data, call->outputs[0].data, n, c, hw, c0, ceil_div(c, c0), ceil_div(hw, kChunk)};
  switch (item_size(x.dtype)) {
    case 1: nc1hwc0<uint8_t, kToBlocked>(s, call->num_threads); break;
    case 2: nc1hwc0<uint16_t, kToBlocked>(s, call->num_threads); break;
    default: nc1hwc0<uint32_t, kToBlocked>(s, call->num_threads);
  }
  return HAL_OK;
}

// ---- FRACTAL_NZ -------------------------------------------------------------------------------

int32_t to_fractal_nz_infer(hal_kernel_call* call) {
  HAL_CHECK(check_arity(call, "ToFractalNZ", 1, 1));
  HAL_CHECK(check_min_rank(call, "ToFractalNZ", 0, "x", 2));
  const hal_tensor& x = call->inputs[0];
  if (x.ndim + 2 > HAL_MAX_DIMS) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "ToFractalNZ: x may have at most %d dimensions, got %d", HAL_MAX_DIMS - 2, x.ndim);
  }
  int64_t m0, n0;
  HAL_CHECK(positive_attr(call, "ToFractalNZ", "m0", 16, &m0));
  HAL_CHECK(positive_attr(call, "ToFractalNZ", "n0", 16, &n0));
  int64_t shape[HAL_MAX_DIMS];
  int32_t batch = x.ndim - 2;
  for (int32_t i = 0; i < batch; ++i) shape[i] = x.shape[i];
  shape[batch] = ceil_div(x.shape[batch + 1], n0);
  shape[batch + 1] = ceil_div(x.shape[batch], m0);
  shape[batch + 2] = m0;
  shape[batch + 3] = n0;
  hal_set_output(call, 0, x.dtype, x.ndim + 2, shape);
  return HAL_OK;
}

int32_t from_fractal_nz_infer(hal_kernel_call* call) {
  HAL_CHECK(check_arity(call, "FromFractalNZ", 1, 1));
  HAL_CHECK(check_min_rank(call, "FromFractalNZ", 0, "x", 4));
  const hal_tensor& x = call->inputs[0];
  int32_t batch = x.ndim - 4;
  int64_t n1 = x.shape[batch], m1 = x.shape[batch + 1], m0 = x.shape[batch + 2], n0 = x.shape[batch + 3];
  int64_t rows = hal_attr_int(call, "rows", -1), cols = hal_attr_int(call, "cols", -1);
  if (m0 == 0 || n0 == 0) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT, "FromFractalNZ: M0 and N0 must be positive, got shape %s (..., N1, M1, M0, N0)",
                    shape_string(x).c_str());
  }
  if (rows < 0 || cols < 0 || ceil_div(rows, m0) != m1 || ceil_div(cols, n0) != n1) {
    return hal_fail(call, HAL_ERR_INVALID_ARGUMENT,
                    "FromFractalNZ: rows and cols (the original M, N) must satisfy ceil(M / M0) = M1 and ceil(N / N0) = N1 for "
                    "shape %s (..., N1, M1, M0, N0), got rows=%lld cols=%lld",
                    shape_string(x).c_str(), static_cast<long long>(rows), static_cast<long long>(cols));
  }
  int64_t shape[HAL_MAX_DIMS];
  for (int32_t i = 0; i < batch; ++i) shape[i] = x.shape[i];
  shape[batch] = rows;
  shape[batch + 1] = cols;
  hal_set_output(call, 0, x.dtype, batch + 2, shape);
  return HAL_OK;
}

// (B, M, N) <-> (B, N1, M1, M0, N0) in items of one m0-row block (b, rb): the block's rows are
// contiguous in the plain matrix, and its N1 fractals are contiguous pieces of the blocked one.
// Consecutive items are done in bands of kBandBlocks, and kFractalTile fractals at a time (see
// fractal_items); both measured best on Zen 3 for 1-, 2- and 4-byte elements alike. Streaming
// stores into the blocked tensor go one row block and one fractal at a time, so that each output
// line is completed by consecutive stores (3x faster than bands of 4 blocks there).
constexpr int64_t kBandBlocks = 4;
template <bool kTo>
constexpr int64_t kFractalTile = kTo ? 4 : 8;

struct FractalNz {
  const void* in;
  void* out;
  int64_t batches, m, n, m0, n0, m1, n1;
  int64_t esize;
};

// The loop over a range of items. Full(dst, src) copies one whole fractal row (piece_bytes),
// Part(dst, src, valid, bytes) the last, partial one of a plain row (`valid` bytes of data, the
// rest of `bytes` zero), Zero(dst) writes a fractal row of padding.
//
// A band of up to `band` whole row blocks of one matrix is done `tile` fractals at a time: row by
// row, each row's `tile` pieces (contiguous in the plain row) to (from) `tile` fractals. Row r of
// the band is row r % m0 of fractal (j, r / m0), at strip j + r * piece_bytes, so each strip of
// fractals is written (read) front to back and the rows are read (written) in runs of `tile`
// pieces.
template <bool kTo, class Full, class Part, class Zero>
HAL_ALWAYS_INLINE void fractal_items(const FractalNz& s, int64_t begin, int64_t end, int64_t band, int64_t tile, const Full& full,
                                     const Part& part, const Zero& zero) {
  const int64_t es = s.esize, row_bytes = s.n * es, piece_bytes = s.n0 * es;
  const int64_t strip_bytes = s.m1 * s.m0 * piece_bytes, full_strips = s.n / s.n0;
  char* plain = static_cast<char*>(const_cast<void*>(kTo ? s.in : s.out));
  char* blocked = static_cast<char*>(kTo ? s.out : const_cast<void*>(s.in));
  for (int64_t item = begin; item < end;) {
    const int64_t b = item / s.m1, rb = item % s.m1;
    const int64_t blocks = std::min({band, end - item, s.m1 - rb});
    const int64_t r0 = rb * s.m0, r1 = (rb + blocks) * s.m0, data_end = std::min(r1, s.m);
    char* plain_rows = plain + b * s.m * row_bytes;
    char* strips = blocked + b * s.n1 * strip_bytes;
    for (int64_t j0 = 0; j0 < s.n1; j0 += tile) {
      const int64_t j1 = std::min(s.n1, j0 + tile), whole = std::min(j1, full_strips);
      for (int64_t r = r0; r < (kTo ? r1 : data_end); ++r) {
        char* f = strips + j0 * strip_bytes + r * piece_bytes;
        int64_t j = j0;
        if (r < data_end) {
          char* p = plain_rows + r * row_bytes + j0 * piece_bytes;
          for (; j < whole; ++j, f += strip_bytes, p += piece_bytes) kTo ? full(f, p) : full(p, f);
          for (; j < j1; ++j, f += strip_bytes, p += piece_bytes) {
            const int64_t valid = (s.n - j * s.n0) * es;
            kTo ? part(f, p, valid, piece_bytes) : part(p, f, valid, valid);
          }
        } else {
          for (; j < j1; ++j, f += strip_bytes) zero(f);
        }
      }
    }
    item += blocks;
  }
}

template <bool kTo, int kBytes>
void fractal_baseline(const FractalNz& s, int64_t begin, int64_t end) {
  const int64_t piece = s.n0 * s.esize;
  fractal_items<kTo>(
      s, begin, end, kBandBlocks, kFractalTile<kTo>, [piece](char* dst, const char* src) { std::memcpy(dst, src, kBytes ? kBytes : piece); },
      [](char* dst, const char* src, int64_t valid, int64_t bytes) {
        std::memcpy(dst, src, static_cast<size_t>(valid));
        std::memset(dst + valid, 0, static_cast<size_t>(bytes - valid));
      },
      [piece](char* dst) { std::memset(dst, 0, static_cast<size_t>(piece)); });
}

#if defined(HAL_X86_DISPATCH)

// `bytes` (a multiple of 16) from src to dst in vectors.
template <int kMode>
HAL_VECTOR_TARGET HAL_ALWAYS_INLINE void copy_vectors(char* dst, const char* src, int64_t bytes) {
  int64_t k = 0;
  for (; k + 32 <= bytes; k += 32) store256<kMode>(dst + k, load256(src + k));
  if (k < bytes) store128<kMode>(dst + k, load128(src + k));
}

template <int kMode>
HAL_VECTOR_TARGET HAL_ALWAYS_INLINE void zero_vectors(char* dst, int64_t bytes) {
  int64_t k = 0;
  for (; k + 32 <= bytes; k += 32) store256<kMode>(dst + k, _mm256_setzero_si256());
  if (k < bytes) store128<kMode>(dst + k, _mm_setzero_si128());
}

// The last piece of a row: `valid` bytes copied and the rest of `bytes` zero. Into a fractal
// (bytes a multiple of 16) every store is a whole vector, so that streaming stores may be used;
// into a plain row (bytes = valid) the bytes that do not fill a vector are copied with memcpy
// (only with ordinary stores: the caller streams only when rows are multiples of 16 bytes).
template <int kMode>
HAL_VECTOR_TARGET HAL_ALWAYS_INLINE void copy_part(char* dst, const char* src, int64_t valid, int64_t bytes) {
  const int64_t whole = valid & ~int64_t{15};
  copy_vectors<kMode>(dst, src, whole);
  if (whole < valid && whole + 16 <= bytes) {
    alignas(16) char tail[16] = {};
    std::memcpy(tail, src + whole, static_cast<size_t>(valid - whole));
    store128<kMode>(dst + whole, _mm_load_si128(reinterpret_cast<const __m128i*>(tail)));
    zero_vectors<kMode>(dst + whole + 16, bytes - whole - 16);
  } else if (whole < valid) {
    std::memcpy(dst + whole, src + whole, static_cast<size_t>(valid - whole));
  } else {
    zero_vectors<kMode>(dst + whole, bytes - whole);
  }
}

// kBytes: the fractal row's size when it is one of the common ones (a multiple of 16 up to 128),
// else 0 (any multiple of 16 from the FractalNz).
template <bool kTo, int kMode, int kBytes>
HAL_VECTOR_TARGET void fractal_vector(const FractalNz& s, int64_t begin, int64_t end) {
  const int64_t piece = kBytes ? kBytes : s.n0 * s.esize;
  constexpr bool kOneByOne = kTo && kMode != kPlain;
  fractal_items<kTo>(
      s, begin, end, kOneByOne ? 1 : kBandBlocks, kOneByOne ? 1 : kFractalTile<kTo>, [piece](char* dst, const char* src) HAL_VECTOR_TARGET { copy_vectors<kMode>(dst, src, piece); },
      [](char* dst, const char* src, int64_t valid, int64_t bytes) HAL_VECTOR_TARGET { copy_part<kMode>(dst, src, valid, bytes); },
      [piece](char* dst) HAL_VECTOR_TARGET { zero_vectors<kMode>(dst, piece); });
  if (kMode != kPlain) _mm_sfence();
}

#endif  // HAL_X86_DISPATCH

template <bool kTo>
void fractal_nz(const FractalNz& s, int32_t threads) {
  using Range = void (*)(const FractalNz&, int64_t, int64_t);
  const int64_t piece = s.n0 * s.esize;
  Range range = piece == 16 ? &fractal_baseline<kTo, 16>
              : piece == 32 ? &fractal_baseline<kTo, 32>
              : piece == 64 ? &fractal_baseline<kTo, 64>
                            : &fractal_baseline<kTo, 0>;
#if defined(HAL_X86_DISPATCH)
  if (cpu_has_avx2_fma_f16c() && piece % 16 == 0) {
    // Every vector store lands a multiple of 16 bytes after the output's start when the pieces
    // are (to) or the pieces and the rows are (from) multiples of 16 bytes.
    const int64_t stride = kTo || s.n * s.esize % 16 == 0 ? 16 : 1;
    const int64_t out_bytes = kTo ? s.batches * s.n1 * s.m1 * s.m0 * piece : s.batches * s.m * s.n * s.esize;
    if (store_mode(s.out, out_bytes, stride) != kPlain) {
      range = piece == 32 ? &fractal_vector<kTo, kStream16, 32>
            : piece == 64 ? &fractal_vector<kTo, kStream16, 64>
                          : &fractal_vector<kTo, kStream16, 0>;
    } else {
      range = piece == 16 ? &fractal_vector<kTo, kPlain, 16>
            : piece == 32 ? &fractal_vector<kTo, kPlain, 32>
            : piece == 64 ? &fractal_vector<kTo, kPlain, 64>
                          : &fractal_vector<kTo, kPlain, 0>;
    }
  }
#endif
  parallel_for(s.batches * s.m1, s.m0 * s.n1 * s.n0, threads, [&](int64_t begin, int64_t end) { range(s, begin, end); });
}

template <bool kToBlocked>
int32_t fractal_nz_compute(hal_kernel_call* call) {
  const hal_tensor& x = call->inputs[0];
  const hal_tensor& plain = kToBlocked ? x : call->outputs[0];
  const hal_tensor& blocked = kToBlocked ? call->outputs[0] : x;
  int64_t m = plain.shape[plain.ndim - 2], n = plain.shape[plain.ndim - 1];
  int64_t m0 = blocked.shape[blocked.ndim - 2], n0 = blocked.shape[blocked.ndim - 1];
  int64_t batches = rows_of(plain) / std::max<int64_t>(m, 1);
  if (m == 0 || n == 0 || batches == 0) return HAL_OK;
  FractalNz s{x.data, call->outputs[0].data, batches, m, n, m0, n0, ceil_div(m, m0), ceil_div(n, n0),
              static_cast<int64_t>(item_size(x.dtype))};
  fractal_nz<kToBlocked>(s, call->num_threads);
  return HAL_OK;
}

}  // namespace

#define HAL_LAYOUT_DTYPES "float32,float16,bfloat16,int8"
HAL_REGISTER_KERNEL("com.hal", "ToNC1HWC0", "cpu,ascend,kunlun", HAL_LAYOUT_DTYPES, to_nc1hwc0_infer, nc1hwc0_compute<true>);
HAL_REGISTER_KERNEL("com.hal", "FromNC1HWC0", "cpu,ascend,kunlun", HAL_LAYOUT_DTYPES, from_nc1hwc0_infer, nc1hwc0_compute<false>);
HAL_REGISTER_KERNEL("com.hal", "ToFractalNZ", "cpu,ascend,kunlun", HAL_LAYOUT_DTYPES, to_fractal_nz_infer, fractal_nz_compute<true>);
HAL_REGISTER_KERNEL("com.hal", "FromFractalNZ", "cpu,ascend,kunlun", HAL_LAYOUT_DTYPES, from_fractal_nz_infer, fractal_nz_compute<false>);

}  // namespace hal::kernels
