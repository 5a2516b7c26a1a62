// Large host copies at memory bandwidth.
#pragma once

#include <cstddef>

namespace hal {

// Copies nbytes from src to dst (regions may overlap: memmove semantics).
//
// Large non-overlapping copies use non-temporal (streaming) stores where the CPU has AVX2: the
// destination is not read into the cache first, which on this class of machine moves ~1.5x the
// bytes per second of glibc's memcpy for copies larger than the last-level cache. It also models
// what a DMA engine does to device memory: it does not pollute the host's caches.
void bulk_copy(void* dst, const void* src, size_t nbytes);

}  // namespace hal
