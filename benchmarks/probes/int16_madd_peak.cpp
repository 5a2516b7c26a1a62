// The rate at which this core can do exact int16 multiply-adds, the instruction pair every int8
// and int16 GEMM without VNNI is made of: vpmaddwd (16 int16 products, summed in pairs into int32)
// then vpaddd into an accumulator. bench_ops.py prints it next to hal's QuantizedMatMul rate, as
// it prints numpy's sgemm rate next to float kernels: the distance to what the hardware allows.
//
// Twelve independent accumulators (more than latency x throughput needs), no loads or stores, in
// inline assembly so that no compiler can hoist, fuse or spill anything; the loop counter's add
// and branch go to the integer ports, which these instructions do not use.
//
// Built by bench_ops.py with the system C++ compiler; x86-64 with AVX2 only (returns 0 elsewhere).
#include <chrono>
#include <cstdint>

namespace {

#if defined(__x86_64__)
#define HAL_MADD_ADD(acc) "vpmaddwd %%ymm14, %%ymm15, %%ymm13\n\tvpaddd %%ymm13, %%ymm" #acc ", %%ymm" #acc "\n\t"

__attribute__((target("avx2"), noinline)) void madd_add_loop(int64_t iterations) {
  asm volatile(
      "vpxor %%ymm0, %%ymm0, %%ymm0\n\t"
      "vmovdqa %%ymm0, %%ymm1\n\tvmovdqa %%ymm0, %%ymm2\n\tvmovdqa %%ymm0, %%ymm3\n\t"
      "vmovdqa %%ymm0, %%ymm4\n\tvmovdqa %%ymm0, %%ymm5\n\tvmovdqa %%ymm0, %%ymm6\n\t"
      "vmovdqa %%ymm0, %%ymm7\n\tvmovdqa %%ymm0, %%ymm8\n\tvmovdqa %%ymm0, %%ymm9\n\t"
      "vmovdqa %%ymm0, %%ymm10\n\tvmovdqa %%ymm0, %%ymm11\n\t"
      "vpcmpeqd %%ymm14, %%ymm14, %%ymm14\n\tvpcmpeqd %%ymm15, %%ymm15, %%ymm15\n\t"
      "1:\n\t"
      HAL_MADD_ADD(0) HAL_MADD_ADD(1) HAL_MADD_ADD(2) HAL_MADD_ADD(3) HAL_MADD_ADD(4) HAL_MADD_ADD(5)
      HAL_MADD_ADD(6) HAL_MADD_ADD(7) HAL_MADD_ADD(8) HAL_MADD_ADD(9) HAL_MADD_ADD(10) HAL_MADD_ADD(11)
      "dec %0\n\tjnz 1b\n\t"
      "vzeroupper\n\t"
      : "+r"(iterations)
      :
      : "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm13",
        "xmm14", "xmm15", "cc");
}
#undef HAL_MADD_ADD
#endif

}  // namespace

// Multiply-accumulates per second (16 per vpmaddwd + vpaddd pair) over `iterations` of twelve
// pairs, on the calling thread; 0 where the instructions are not available.
extern "C" double int16_madd_macs_per_second(int64_t iterations) {
#if defined(__x86_64__)
  if (!__builtin_cpu_supports("avx2") || iterations < 1) return 0.0;
  const auto start = std::chrono::steady_clock::now();
  madd_add_loop(iterations);
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  return 12.0 * 16.0 * static_cast<double>(iterations) / took.count();
#else
  (void)iterations;
  return 0.0;
#endif
}
