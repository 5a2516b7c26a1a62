// hal._C.DecoderLayers: hal.llm's fused CPU decode step (csrc/llm/decoder_layers.h) as Python
// builds it once per model (the weights, checked and kept alive) and calls it once per token.
#include <pybind11/stl.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "kernel_bindings.h"
#include "llm/decoder_layers.h"

namespace py = pybind11;

namespace hal::python {
namespace {

std::string shape_text(const py::array& a) {
  std::string text = "(";
  for (py::ssize_t i = 0; i < a.ndim(); ++i) text += (i ? ", " : "") + std::to_string(a.shape(i));
  return text + (a.ndim() == 1 ? ",)" : ")");
}

// `value` as a C-contiguous array of one of `dtypes` and the given shape (-1: any extent), else
// hal.InvalidArgumentError naming `what`.
py::array checked(const py::handle& value, const std::string& what, std::initializer_list<int32_t> dtypes,
                  std::initializer_list<int64_t> shape, bool writable = false) {
  if (!py::isinstance<py::array>(value)) raise_hal("InvalidArgumentError", "DecoderLayers: " + what + " must be a numpy array");
  auto a = py::reinterpret_borrow<py::array>(value);
  const int32_t code = dtype_code_of(a);
  bool ok = (a.flags() & py::array::c_style) && (!writable || a.writeable()) && a.ndim() == static_cast<py::ssize_t>(shape.size());
  bool dtype_ok = false;
  for (int32_t d : dtypes) dtype_ok = dtype_ok || d == code;
  py::ssize_t i = 0;
  for (int64_t extent : shape) {
    if (ok && extent >= 0 && a.shape(i) != extent) ok = false;
    ++i;
  }
  if (!ok || !dtype_ok) {
    std::string expected = "(";
    i = 0;
    for (int64_t extent : shape) expected += (i++ ? ", " : "") + (extent >= 0 ? std::to_string(extent) : std::string("any"));
    raise_hal("InvalidArgumentError", "DecoderLayers: " + what + " must be a C-contiguous" + (writable ? " writable" : "") +
                                          " array of shape " + expected + (shape.size() == 1 ? ",)" : ")") + "; got " +
                                          std::string(py::str(a.dtype())) + " " + shape_text(a));
  }
  return a;
}

class DecoderLayersHandle {
 public:
  DecoderLayersHandle(const py::list& layers, int64_t hidden, int64_t heads, int64_t kv_heads, int64_t head_dim,
                      int64_t intermediate, double eps) {
    if (hidden < 1 || heads < 1 || kv_heads < 1 || heads % kv_heads != 0 || head_dim < 2 || head_dim % 2 != 0 || intermediate < 1) {
      raise_hal("InvalidArgumentError", "DecoderLayers: sizes must be positive, heads a multiple of kv_heads and head_dim even");
    }
    shape_ = {hidden, heads, kv_heads, head_dim, intermediate, eps};
    const int64_t qkv = (heads + 2 * kv_heads) * head_dim;
    std::vector<llm::LayerWeights> weights;
    for (size_t i = 0; i < layers.size(); ++i) {
      const std::string at = "layer " + std::to_string(i) + " ";
      auto layer = layers[i].cast<py::tuple>();
      if (layer.size() != 6) raise_hal("InvalidArgumentError", "DecoderLayers: " + at + "must be (input_norm, qkv, o, post_norm, gate_up, down)");
      llm::LayerWeights w;
      w.input_norm = norm(layer[0], at + "input_norm", hidden);
      w.qkv = fc(layer[1], at + "qkv", hidden, qkv);
      w.o = fc(layer[2], at + "o", heads * head_dim, hidden);
      w.post_norm = norm(layer[3], at + "post_norm", hidden);
      w.gate_up = fc(layer[4], at + "gate_up", hidden, 2 * intermediate);
      w.down = fc(layer[5], at + "down", intermediate, hidden);
      weights.push_back(w);
    }
    layers_ = std::make_unique<llm::DecoderLayers>(shape_, std::move(weights));
  }

  void step(const py::handle& hidden, const py::handle& cache, const py::handle& cos, const py::handle& sin,
            const py::handle& key_bias, int64_t past) {
    auto h = checked(hidden, "hidden", {HAL_FLOAT32}, {-1, shape_.hidden}, true);
    const int64_t batch = h.shape(0);
    auto c = checked(cache, "cache", {HAL_FLOAT32, HAL_FLOAT16, HAL_BFLOAT16},
                     {layers_->num_layers(), 2, batch, shape_.kv_heads, -1, shape_.head_dim}, true);
    auto co = checked(cos, "cos", {HAL_FLOAT32}, {batch, shape_.head_dim / 2});
    auto si = checked(sin, "sin", {HAL_FLOAT32}, {batch, shape_.head_dim / 2});
    auto bias = checked(key_bias, "key_bias", {HAL_FLOAT32}, {batch, -1});
    const int64_t max_length = c.shape(4);
    if (past < 0 || past >= max_length || past >= bias.shape(1)) {
      raise_hal("InvalidArgumentError", "DecoderLayers: past must be in [0, " + std::to_string(std::min<int64_t>(max_length, bias.shape(1))) +
                                            ") (the cache's and key_bias's positions), got " + std::to_string(past));
    }
    llm::DecodeStep s{static_cast<float*>(h.mutable_data()), c.mutable_data(), dtype_code_of(c), batch, max_length, past,
                      static_cast<const float*>(co.data()), static_cast<const float*>(si.data()),
                      static_cast<const float*>(bias.data()), bias.shape(1)};
    try {
      py::gil_scoped_release nogil;
      layers_->step(s);
    } catch (const std::runtime_error& e) {
      raise_hal("DeviceError", e.what());
    }
  }

  int64_t num_layers() const { return layers_->num_layers(); }

 private:
  const float* norm(const py::handle& value, const std::string& what, int64_t n) {
    auto a = checked(value, what, {HAL_FLOAT32}, {n});
    keep_.push_back(a);
    return static_cast<const float*>(a.data());
  }

  // (w [k, n], scale [n] or None, bias [n] or None)
  llm::FcWeights fc(const py::handle& value, const std::string& what, int64_t k, int64_t n) {
    auto parts = value.cast<py::tuple>();
    if (parts.size() != 3) raise_hal("InvalidArgumentError", "DecoderLayers: " + what + " must be (w, scale or None, bias or None)");
    auto w = checked(parts[0], what + " w", {HAL_FLOAT32, HAL_FLOAT16, HAL_BFLOAT16, HAL_INT8}, {k, n});
    keep_.push_back(w);
    llm::FcWeights f;
    f.w.data = const_cast<void*>(w.data());
    f.w.dtype = dtype_code_of(w);
    f.w.ndim = 2;
    f.w.shape[0] = k;
    f.w.shape[1] = n;
    if ((f.w.dtype == HAL_INT8) == parts[1].is_none()) {
      raise_hal("InvalidArgumentError", "DecoderLayers: " + what + ": int8 weights take a float32 scale per column, float weights none");
    }
    if (!parts[1].is_none()) f.scale = norm(parts[1], what + " scale", n);
    if (!parts[2].is_none()) f.bias = norm(parts[2], what + " bias", n);
    return f;
  }

  llm::DecoderShape shape_{};
  std::vector<py::object> keep_;  // the weights' arrays, read in place by every step
  std::unique_ptr<llm::DecoderLayers> layers_;
};

}  // namespace

void bind_llm(py::module_& m) {
  py::class_<DecoderLayersHandle>(m, "DecoderLayers",
                                  "hal.llm's fused decode step on the CPU: every decoder layer for one new token per sequence, "
                                  "run in C++ through the com.hal kernels with the GIL released (csrc/llm/decoder_layers.h).")
      .def(py::init<const py::list&, int64_t, int64_t, int64_t, int64_t, int64_t, double>(), py::arg("layers"), py::kw_only(),
           py::arg("hidden_size"), py::arg("num_heads"), py::arg("num_kv_heads"), py::arg("head_dim"), py::arg("intermediate_size"),
           py::arg("eps"),
           "layers: per layer (input_norm, qkv, o, post_norm, gate_up, down), each fully connected layer (w [in, out], "
           "scale [out] for int8 w else None, bias [out] or None).")
      .def("step", &DecoderLayersHandle::step, py::arg("hidden"), py::arg("cache"), py::arg("cos"), py::arg("sin"),
           py::arg("key_bias"), py::arg("past"),
           "hidden [B, hidden] float32 (updated in place); cache [layers, 2, B, kv_heads, max_length, head_dim] (written at "
           "position past); cos, sin [B, head_dim / 2] float32; key_bias [B, >= past + 1] float32, the additive key mask.")
      .def_property_readonly("num_layers", &DecoderLayersHandle::num_layers);
}

}  // namespace hal::python
