// hal.llm's fused decode step on the CPU: every decoder layer of a model, for one new token per
// sequence, run from C++ through the registered com.hal kernels (RMSNorm, Linear, RoPE,
// CachedAttention, SwiGLU) that the Python kernel route calls one by one.
//
// Why it exists: on a ~100M-parameter model a CPU decode step is ~15 ms of weight sweeps and, run
// layer by layer from Python, ~1-1.8 ms of glue between them (argument checks, numpy views and
// reshapes, the kernels' entry points), during which the kernels' second thread spins idle. This
// runs the same kernels, in the same order, on the same buffers, with the GIL released: the
// results are bit for bit the Python route's (tests/llm/test_fused_decode.py), and the weights'
// sweeps follow one another as a model's layers do in onnxruntime. hal.llm uses it on the CPU
// (which applies no chip numerics between kernels); prefill and the simulated chips, whose kernels
// round and advance a clock in between, stay on the Python route.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "hal/kernel.h"
#include "ops/registry.h"

namespace hal::llm {

// A fully connected layer as hal.ops.linear reads it: w [K, N] float32 / float16 / bfloat16, or
// int8 levels with scale [N] (weight-only quantization); bias [N] or none.
struct FcWeights {
  hal_tensor w{};
  const float* scale = nullptr;
  const float* bias = nullptr;
};

// One Llama / Qwen2 decoder layer's weights (hal.llm.model's _Layer): q, k and v in one matrix
// [hidden, (heads + 2 kv_heads) head_dim], gate and up in one [hidden, 2 intermediate].
struct LayerWeights {
  const float* input_norm = nullptr;  // [hidden]
  FcWeights qkv, o, gate_up, down;
  const float* post_norm = nullptr;  // [hidden]
};

struct DecoderShape {
  int64_t hidden, heads, kv_heads, head_dim, intermediate;
  double eps;  // RMSNorm's epsilon, passed to the kernel as Python passes it
};

// One decode step of `batch` sequences, one token each, at cache position `past`.
struct DecodeStep {
  float* hidden;           // [batch, hidden] float32, updated in place
  void* cache;             // [layers, 2 (keys, values), batch, kv_heads, max_length, head_dim]
  int32_t cache_dtype;     // HAL_FLOAT32, HAL_FLOAT16 or HAL_BFLOAT16
  int64_t batch, max_length, past;
  const float* cos;        // [batch, head_dim / 2]: this token's rotary angles
  const float* sin;
  const float* key_bias;   // row b's additive mask over positions [0, past]: key_bias[b * stride + t]
  int64_t key_bias_stride;
};

class DecoderLayers {
 public:
  DecoderLayers(const DecoderShape& shape, std::vector<LayerWeights> layers);
  // Runs every layer; a kernel's failure throws std::runtime_error with its message (the binding
  // checks shapes and dtypes first, so that is not expected). One step at a time per object.
  void step(const DecodeStep& s);
  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }

 private:
  void linear(const FcWeights& fc, const float* x, int64_t rows, float* y);

  DecoderShape shape_;
  std::vector<LayerWeights> layers_;
  const ops::Kernel *rms_norm_, *linear_, *rope_, *attention_, *swiglu_;
  std::mutex mutex_;  // guards scratch_
  std::vector<float> scratch_;
};

}  // namespace hal::llm
