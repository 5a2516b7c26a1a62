// What the host CPU can do, asked once; code compiled for wider instruction sets (the target
// attribute) runs only where these say it may.
#pragma once

namespace hal {

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAL_X86_DISPATCH 1
// AVX2 256-bit integer and float vectors (streaming copies, kernels).
inline bool cpu_has_avx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}
// AVX2 with FMA and F16C: what the kernels' vector paths are compiled for.
inline bool cpu_has_avx2_fma_f16c() {
  static const bool has = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  return has;
}
#else
inline bool cpu_has_avx2() { return false; }
inline bool cpu_has_avx2_fma_f16c() { return false; }
#endif

}  // namespace hal
