// The layouts Ascend's cube unit reads, and back (com.hal::ToNC1HWC0 / FromNC1HWC0 /
// ToFractalNZ / FromFractalNZ). Pure data movement, so any 1-, 2- or 4-byte dtype; the padding
// is zeros. CANN documents both (aclFormat, "Data Formats" in the CANN developer guide):
//   NC1HWC0: (N, C, H, W) -> (N, C1, H, W, C0), C1 = ceil(C / C0), C0 = 16 for 16-bit types.
//   FRACTAL_NZ: (..., M, N) -> (..., N1, M1, M0, N0): 16 x 16 fractals, the fractals column-major
//   (N1 outer), the elements in each row-major. M1 = ceil(M / M0), N1 = ceil(N / N0).
#include <cstring>

#include "ops/checks.h"
#include "ops/kernel_support.h"

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

// (N, C, HW) <-> (N, C1, HW, C0): per (n, c1), a C0 x HW block transposed, in tiles of HW.
template <class E, bool kToBlocked>
void nc1hwc0(const E* in, E* out, int64_t n, int64_t c, int64_t hw, int64_t c0, int32_t threads) {
  const int64_t c1 = ceil_div(c, c0);
  constexpr int64_t kTile = 64;
  parallel_for(n * c1, hw * c0, threads, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      int64_t batch = item / c1, block = item % c1;
      int64_t channels = std::min(c0, c - block * c0);
      for (int64_t t = 0; t < hw; t += kTile) {
        int64_t tile = std::min(kTile, hw - t);
        for (int64_t k = 0; k < c0; ++k) {
          E* blocked = (kToBlocked ? out : const_cast<E*>(in)) + (item * hw + t) * c0 + k;
          if (k >= channels) {
            if (kToBlocked) {
              for (int64_t i = 0; i < tile; ++i) blocked[i * c0] = E{0};
            }
            continue;
          }
          int64_t plain_offset = ((batch * c) + block * c0 + k) * hw + t;
          if (kToBlocked) {
            const E* src = in + plain_offset;
            for (int64_t i = 0; i < tile; ++i) blocked[i * c0] = src[i];
          } else {
            E* dst = out + plain_offset;
            for (int64_t i = 0; i < tile; ++i) dst[i] = blocked[i * c0];
          }
        }
      }
    }
  });
}

template <bool kToBlocked>
int32_t nc1hwc0_compute(hal_kernel_call* call) {
  const hal_tensor& x = call->inputs[0];
  const hal_tensor& plain = kToBlocked ? x : call->outputs[0];
  const hal_tensor& blocked = kToBlocked ? call->outputs[0] : x;
  int64_t n = plain.shape[0], c = plain.shape[1], hw = plain.shape[2] * plain.shape[3], c0 = blocked.shape[4];
  if (n == 0 || c == 0 || hw == 0) return HAL_OK;
  void* out = call->outputs[0].data;
  switch (item_size(x.dtype)) {
    case 1: nc1hwc0<uint8_t, kToBlocked>(static_cast<const uint8_t*>(x.data), static_cast<uint8_t*>(out), n, c, hw, c0, call->num_threads); break;
    case 2: nc1hwc0<uint16_t, kToBlocked>(static_cast<const uint16_t*>(x.data), static_cast<uint16_t*>(out), n, c, hw, c0, call->num_threads); break;
    default: nc1hwc0<uint32_t, kToBlocked>(static_cast<const uint32_t*>(x.data), static_cast<uint32_t*>(out), n, c, hw, c0, call->num_threads);
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
  if (rows < 0 || cols < 0 || ceil_div(rows, std::max<int64_t>(m0, 1)) != m1 || ceil_div(cols, std::max<int64_t>(n0, 1)) != n1) {
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

// (B, M, N) <-> (B, N1, M1, M0, N0), one padded row (b, m) at a time: the plain row is read or
// written sequentially and its N1 pieces of N0 elements go to (come from) the N1 column strips.
template <class E, bool kToBlocked>
void fractal_nz(const E* in, E* out, int64_t batches, int64_t m, int64_t n, int64_t m0, int64_t n0, int32_t threads) {
  const int64_t m1 = ceil_div(m, m0), n1 = ceil_div(n, n0), padded_rows = m1 * m0;
  const int64_t strip = padded_rows * n0;  // elements of one (b, n1) strip
  parallel_for(batches * padded_rows, n1 * n0, threads, [&](int64_t begin, int64_t end) {
    for (int64_t item = begin; item < end; ++item) {
      int64_t b = item / padded_rows, row = item % padded_rows;
      E* blocked = (kToBlocked ? out : const_cast<E*>(in)) + b * n1 * strip + row * n0;
      for (int64_t j = 0; j < n1; ++j) {
        E* piece = blocked + j * strip;
        int64_t cols = std::min(n0, n - j * n0);
        if (row >= m) {
          if (kToBlocked) std::memset(piece, 0, sizeof(E) * n0);
          continue;
        }
        int64_t plain_offset = (b * m + row) * n + j * n0;
        if (kToBlocked) {
          std::memcpy(piece, in + plain_offset, sizeof(E) * cols);
          if (cols < n0) std::memset(piece + cols, 0, sizeof(E) * (n0 - cols));
        } else {
          std::memcpy(out + plain_offset, piece, sizeof(E) * cols);
        }
      }
    }
  });
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
  void* out = call->outputs[0].data;
  switch (item_size(x.dtype)) {
    case 1: fractal_nz<uint8_t, kToBlocked>(static_cast<const uint8_t*>(x.data), static_cast<uint8_t*>(out), batches, m, n, m0, n0, call->num_threads); break;
    case 2: fractal_nz<uint16_t, kToBlocked>(static_cast<const uint16_t*>(x.data), static_cast<uint16_t*>(out), batches, m, n, m0, n0, call->num_threads); break;
    default: fractal_nz<uint32_t, kToBlocked>(static_cast<const uint32_t*>(x.data), static_cast<uint32_t*>(out), batches, m, n, m0, n0, call->num_threads);
  }
  return HAL_OK;
}

}  // namespace

#define HAL_LAYOUT_DTYPES "float32,float16,bfloat16,int8"
HAL_REGISTER_KERNEL("com.hal", "ToNC1HWC0", "cpu,ascend,kunlun", HAL_LAYOUT_DTYPES, to_nc1hwc0_infer, nc1hwc0_compute<true>);
HAL_REGISTER_KERNEL("com.hal", "FromNC1HWC0", "cpu,ascend,kunlun", HAL_LAYOUT_DTYPES, from_nc1hwc0_infer, nc1hwc0_compute<false>);
HAL_REGISTER_KERNEL("com.hal", "ToFractalNZ", "cpu,ascend,kunlun", HAL_LAYOUT_DTYPES, to_fractal_nz_infer, fractal_nz_compute<true>);
HAL_REGISTER_KERNEL("com.hal", "FromFractalNZ", "cpu,ascend,kunlun", HAL_LAYOUT_DTYPES, from_fractal_nz_infer, fractal_nz_compute<false>);

}  // namespace hal::kernels
