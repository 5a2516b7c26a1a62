#include "memory/bulk_copy.h"

#include <cstdint>
#include <cstring>

#include "common/cpu_features.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HAL_HAVE_STREAMING_COPY 1
#endif

namespace hal {
namespace {

// Below this, the copy fits in cache and ordinary stores (memcpy) are as fast or faster.
constexpr size_t kStreamingThresholdBytes = size_t{1} << 20;

bool overlaps(const void* dst, const void* src, size_t nbytes) {
  auto d = reinterpret_cast<uintptr_t>(dst);
  auto s = reinterpret_cast<uintptr_t>(src);
  return d < s + nbytes && s < d + nbytes;
}

#ifdef HAL_HAVE_STREAMING_COPY
__attribute__((target("avx2"))) void streaming_copy_avx2(char* dst, const char* src, size_t nbytes) {
  // Bring dst to a 32-byte boundary: streaming stores need aligned addresses.
  size_t head = (32 - (reinterpret_cast<uintptr_t>(dst) & 31)) & 31;
  std::memcpy(dst, src, head);
  dst += head;
  src += head;
  nbytes -= head;
  size_t i = 0;
  for (; i + 128 <= nbytes; i += 128) {
    __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i));
    __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i + 32));
    __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i + 64));
    __m256i d = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i + 96));
    _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i), a);
    _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i + 32), b);
    _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i + 64), c);
    _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + i + 96), d);
  }
  _mm_sfence();  // streaming stores are weakly ordered: publish them before anyone reads dst
  std::memcpy(dst + i, src + i, nbytes - i);
}
#endif

}  // namespace

void bulk_copy(void* dst, const void* src, size_t nbytes) {
  if (nbytes == 0 || dst == src) return;
#ifdef HAL_HAVE_STREAMING_COPY
  if (nbytes >= kStreamingThresholdBytes && cpu_has_avx2() && !overlaps(dst, src, nbytes)) {
    streaming_copy_avx2(static_cast<char*>(dst), static_cast<const char*>(src), nbytes);
    return;
  }
#endif
  std::memmove(dst, src, nbytes);
}

}  // namespace hal
