#include "llm/decoder_layers.h"

#include <cmath>
#include <cstring>
#include <initializer_list>
#include <stdexcept>
#include <string>

#include "ops/kernel_support.h"

namespace hal::llm {
namespace {

hal_tensor tensor(const void* data, int32_t dtype, std::initializer_list<int64_t> shape) {
  hal_tensor t{};
  t.data = const_cast<void*>(data);
  t.dtype = dtype;
  t.ndim = static_cast<int32_t>(shape.size());
  int32_t i = 0;
  for (int64_t d : shape) t.shape[i++] = d;
  return t;
}

hal_attr int_attr(const char* name, int64_t value) {
  hal_attr a{};
  a.name = name;
  a.kind = HAL_ATTR_INT;
  a.i = value;
  return a;
}

hal_attr float_attr(const char* name, double value) {
  hal_attr a{};
  a.name = name;
  a.kind = HAL_ATTR_FLOAT;
  a.f = value;
  return a;
}

// Runs a registered kernel as the numpy entry points do (infer, then compute), its one output
// written to `out`, which holds `out_elements` elements of the inferred output.
void run(const ops::Kernel& kernel, std::initializer_list<hal_tensor> inputs, void* out, int64_t out_elements,
         std::initializer_list<hal_attr> attrs = {}) {
  hal_tensor outputs[HAL_MAX_OUTPUTS]{};
  char message[512];
  message[0] = '\0';
  hal_kernel_call call{inputs.begin(), static_cast<int32_t>(inputs.size()), outputs, 0, attrs.begin(),
                       static_cast<int32_t>(attrs.size()), ops::num_threads(), message, sizeof(message)};
  int32_t status = kernel.infer(&call);
  if (status == HAL_OK) {
    int64_t elements = 1;
    for (int32_t i = 0; i < outputs[0].ndim; ++i) elements *= outputs[0].shape[i];
    if (call.num_outputs != 1 || elements != out_elements) {
      throw std::runtime_error("DecoderLayers: " + kernel.op + " inferred an output of an unexpected size");
    }
    outputs[0].data = out;
    status = kernel.compute(&call);
  }
  if (status != HAL_OK) throw std::runtime_error("DecoderLayers: " + kernel.op + ": " + (message[0] ? message : "failed"));
}

// One row's keys or values (float32) into the cache at its dtype.
void store(const float* src, void* dst, int32_t dtype, int64_t n) {
  if (dtype == HAL_FLOAT32) {
    std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
  } else {
    kernels::narrow(src, static_cast<uint16_t*>(dst), n, dtype);
  }
}

}  // namespace

DecoderLayers::DecoderLayers(const DecoderShape& shape, std::vector<LayerWeights> layers)
    : shape_(shape), layers_(std::move(layers)) {
  auto& registry = ops::Registry::global();
  rms_norm_ = &registry.find("com.hal", "RMSNorm", "cpu", "float32");
  linear_ = &registry.find("com.hal", "Linear", "cpu", "float32");
  rope_ = &registry.find("com.hal", "RoPE", "cpu", "float32");
  attention_ = &registry.find("com.hal", "CachedAttention", "cpu", "float32");
  swiglu_ = &registry.find("com.hal", "SwiGLU", "cpu", "float32");
}

void DecoderLayers::linear(const FcWeights& fc, const float* x, int64_t rows, float* y) {
  const int64_t k = fc.w.shape[0], n = fc.w.shape[1];
  const hal_tensor xt = tensor(x, HAL_FLOAT32, {rows, k});
  const hal_tensor bias = tensor(fc.bias, HAL_FLOAT32, {n}), scale = tensor(fc.scale, HAL_FLOAT32, {n});
  if (fc.scale != nullptr && fc.bias != nullptr) {
    run(*linear_, {xt, fc.w, bias, scale}, y, rows * n);
  } else if (fc.scale != nullptr) {
    run(*linear_, {xt, fc.w, scale}, y, rows * n);
  } else if (fc.bias != nullptr) {
    run(*linear_, {xt, fc.w, bias}, y, rows * n);
  } else {
    run(*linear_, {xt, fc.w}, y, rows * n);
  }
}

void DecoderLayers::step(const DecodeStep& s) {
  std::lock_guard lock(mutex_);
  const int64_t batch = s.batch, h = shape_.hidden, d = shape_.head_dim, half = d / 2;
  const int64_t heads = shape_.heads, kv_heads = shape_.kv_heads, groups = heads / kv_heads;
  const int64_t q_cols = heads * d, kv_cols = kv_heads * d, qkv_cols = q_cols + 2 * kv_cols;
  const int64_t rotated_cols = q_cols + kv_cols, inter = shape_.intermediate, length = s.past + 1;
  // Scratch, in order: normed x, qkv, rotated q and k, attention output, a projection, gate|up, act.
  scratch_.resize(static_cast<size_t>(batch * (2 * h + qkv_cols + rotated_cols + q_cols + 3 * inter)));
  float* x = scratch_.data();
  float* qkv = x + batch * h;
  float* rotated = qkv + batch * qkv_cols;
  float* attended = rotated + batch * rotated_cols;
  float* projected = attended + batch * q_cols;
  float* gate_up = projected + batch * h;
  float* act = gate_up + batch * 2 * inter;
  const hal_attr eps = float_attr("epsilon", shape_.eps);
  const hal_attr not_interleaved = int_attr("interleaved", 0);
  // as hal.ops.cached_attention computes its default, float(D) ** -0.5
  const hal_attr attention_attrs[] = {int_attr("length", length), float_attr("scale", std::pow(static_cast<double>(d), -0.5))};
  const int64_t cache_item = s.cache_dtype == HAL_FLOAT32 ? 4 : 2;
  const int64_t part = batch * kv_heads * s.max_length * d;  // elements of one layer's keys (or values)
  const hal_tensor hidden = tensor(s.hidden, HAL_FLOAT32, {batch, h});
  for (size_t index = 0; index < layers_.size(); ++index) {
    const LayerWeights& w = layers_[index];
    char* keys = static_cast<char*>(s.cache) + static_cast<int64_t>(index) * 2 * part * cache_item;
    char* values = keys + part * cache_item;
    run(*rms_norm_, {hidden, tensor(w.input_norm, HAL_FLOAT32, {h})}, x, batch * h, {eps});
    linear(w.qkv, x, batch, qkv);
    for (int64_t b = 0; b < batch; ++b) {
      // q and k heads of row b as (heads + kv_heads) positions of one rotary angle
      run(*rope_, {tensor(qkv + b * qkv_cols, HAL_FLOAT32, {heads + kv_heads, 1, d}),
                   tensor(s.cos + b * half, HAL_FLOAT32, {1, half}), tensor(s.sin + b * half, HAL_FLOAT32, {1, half})},
          rotated + b * rotated_cols, rotated_cols, {not_interleaved});
      for (int64_t head = 0; head < kv_heads; ++head) {
        const int64_t at = ((b * kv_heads + head) * s.max_length + s.past) * d * cache_item;
        store(rotated + b * rotated_cols + q_cols + head * d, keys + at, s.cache_dtype, d);
        store(qkv + b * qkv_cols + q_cols + kv_cols + head * d, values + at, s.cache_dtype, d);
      }
    }
    for (int64_t b = 0; b < batch; ++b) {  // row b's queries (kv_heads x groups) against its cache
      const int64_t row = b * kv_heads * s.max_length * d * cache_item;
      run(*attention_, {tensor(rotated + b * rotated_cols, HAL_FLOAT32, {1, kv_heads, groups, d}),
                        tensor(keys + row, s.cache_dtype, {1, kv_heads, s.max_length, d}),
                        tensor(values + row, s.cache_dtype, {1, kv_heads, s.max_length, d}),
                        tensor(s.key_bias + b * s.key_bias_stride, HAL_FLOAT32, {1, 1, length})},
          attended + b * q_cols, q_cols, {attention_attrs[0], attention_attrs[1]});
    }
    linear(w.o, attended, batch, projected);
    for (int64_t i = 0; i < batch * h; ++i) s.hidden[i] += projected[i];
    run(*rms_norm_, {hidden, tensor(w.post_norm, HAL_FLOAT32, {h})}, x, batch * h, {eps});
    linear(w.gate_up, x, batch, gate_up);
    run(*swiglu_, {tensor(gate_up, HAL_FLOAT32, {batch, 2 * inter})}, act, batch * inter);
    linear(w.down, act, batch, projected);
    for (int64_t i = 0; i < batch * h; ++i) s.hidden[i] += projected[i];
  }
}

}  // namespace hal::llm
