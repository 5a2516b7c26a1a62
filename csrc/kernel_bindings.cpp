// hal._C's kernel half: registered kernels as Python sees them (hal._C.Kernel), the registry
// queries, and the numpy entry points that hal.ops.rms_norm and its siblings call.
//
// Both ways into a kernel, Kernel.run(inputs, attrs) and an entry point's (inputs..., attrs...),
// end in run_on_arrays(): it describes the arrays to the kernel without copying them, lets the
// kernel infer its outputs, allocates them (large ones from a caching arena) and computes.
#include "kernel_bindings.h"

#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <list>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

#include "memory/arena.h"
#include "ops/registry.h"

namespace py = pybind11;

namespace hal::python {

// numpy dtype objects by hal_dtype code, set by hal.ops (bfloat16 comes from ml_dtypes).
std::vector<py::object>& numpy_dtypes() {
  static auto* table = new std::vector<py::object>();  // leaked: outlives the interpreter's teardown order
  return *table;
}

[[noreturn]] void raise_hal(const char* name, const std::string& message) {
  py::object type = py::module_::import("hal.errors").attr(name);
  PyErr_SetString(type.ptr(), message.c_str());
  throw py::error_already_set();
}

// The hal_dtype code of a numpy array's dtype, or -1. numpy hands out one dtype object per
// builtin type, so the identity test answers almost every call; equality catches the rest.
int32_t dtype_code_of(const py::array& a) {
  const auto& table = numpy_dtypes();
  PyObject* descr = reinterpret_cast<PyObject*>(py::detail::array_proxy(a.ptr())->descr);
  for (size_t code = 0; code < table.size(); ++code) {
    if (table[code].ptr() == descr) return static_cast<int32_t>(code);
  }
  for (size_t code = 0; code < table.size(); ++code) {
    if (!table[code].is_none() && a.dtype().equal(table[code])) return static_cast<int32_t>(code);
  }
  return -1;
}

namespace {

template <class F>
auto registry_call(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const hal::ops::RegistryError& e) {
    raise_hal(e.kind() == hal::ops::RegistryError::Kind::kNotFound ? "KernelNotFoundError" : "KernelLibraryError", e.what());
  }
}

std::string label_of(const hal::ops::Kernel& k) { return k.domain + "::" + k.op; }

// Attributes given as a dict (Kernel.run, ONNX nodes), converted to the kernel ABI's hal_attr.
struct KernelAttrs {
  std::vector<hal_attr> attrs;
  std::list<std::string> strings;  // stable addresses for attr names and string values
};

KernelAttrs convert_attrs(const py::dict& attrs, const std::string& op) {
  KernelAttrs out;
  for (auto item : attrs) {
    out.strings.push_back(py::str(item.first));
    hal_attr a{out.strings.back().c_str(), HAL_ATTR_INT, 0, 0.0, nullptr};
    py::handle v = item.second;
    if (py::isinstance<py::bool_>(v) || py::isinstance<py::int_>(v)) {
      a.kind = HAL_ATTR_INT;
      int overflow = 0;
      a.i = PyLong_AsLongLongAndOverflow(v.ptr(), &overflow);
      if (overflow != 0) {
        raise_hal("InvalidArgumentError", op + ": attribute '" + out.strings.back() + "' = " + std::string(py::repr(v)) +
                                              " does not fit in a 64-bit integer");
      }
    } else if (py::isinstance<py::float_>(v)) {
      a.kind = HAL_ATTR_FLOAT;
      a.f = v.cast<double>();
    } else if (py::isinstance<py::str>(v) || py::isinstance<py::bytes>(v)) {
      out.strings.push_back(v.cast<std::string>());
      a.kind = HAL_ATTR_STRING;
      a.s = out.strings.back().c_str();
    } else {
      raise_hal("InvalidArgumentError", op + ": attribute '" + out.strings.back() + "' must be an int, float or str, got " +
                                            std::string(Py_TYPE(v.ptr())->tp_name));
    }
    out.attrs.push_back(a);
  }
  return out;
}

void check_status(int32_t status, const char* message, const hal::ops::Kernel& k) {
  if (status == HAL_OK) return;
  std::string text = message[0] ? message : "the kernel reported failure without a message";
  std::string where = k.domain + "::" + k.op + " (" + k.backend + "/" + k.dtype + ")";
  if (text.rfind(k.op, 0) != 0) text = where + ": " + text;
  raise_hal(status == HAL_ERR_INVALID_ARGUMENT ? "InvalidArgumentError"
            : status == HAL_ERR_DTYPE          ? "UnsupportedDTypeError"
                                               : "DeviceError",
            text);
}

template <class Dim>
hal_tensor describe(int32_t dtype, int32_t ndim, const Dim* shape, void* data, const hal::ops::Kernel& k, size_t index) {
  if (ndim > HAL_MAX_DIMS) {
    raise_hal("InvalidArgumentError", label_of(k) + ": input " + std::to_string(index) + " has " + std::to_string(ndim) +
                                          " dimensions; kernels take at most " + std::to_string(HAL_MAX_DIMS));
  }
  hal_tensor t{};
  t.data = data;
  t.dtype = dtype;
  t.ndim = ndim;
  for (int32_t d = 0; d < ndim; ++d) t.shape[d] = static_cast<int64_t>(shape[d]);
  return t;
}

py::tuple output_specs(const hal_kernel_call& call) {
  py::tuple specs(call.num_outputs);
  for (int32_t i = 0; i < call.num_outputs; ++i) {
    const hal_tensor& t = call.outputs[i];
    specs[i] = py::make_tuple(hal_dtype_name(t.dtype), py::tuple(py::cast(std::vector<int64_t>(t.shape, t.shape + t.ndim))));
  }
  return specs;
}

// ---- kernel outputs returned as numpy arrays --------------------------------------------------
//
// Outputs of 1 MiB and more come from a process-wide caching Arena (csrc/memory/arena.h), the
// same allocator that holds a device's memory, instead of a fresh malloc. A fresh block is fresh
// pages: the kernel's first write to each 4 KiB page faults into the OS, which zeroes it, and for
// a 64 MiB RMSNorm that is a third of the call (numpy pays it on every temporary). A cached block
// was touched before, so a model that calls the same kernels on the same shapes step after step
// writes straight to memory, as onnxruntime's CPU arena and torch's caching allocator do. The
// array's base is a capsule that returns the block when the last view of it goes away.
constexpr int64_t kCachedOutputBytes = int64_t{1} << 20;

// Live plus cached outputs held by the cache at most; beyond it the cache is drained and, when
// live outputs alone fill it, outputs come from numpy's allocator as before.
constexpr int64_t kOutputCacheCapacity = int64_t{2} << 30;

hal::Arena& output_cache() {
  static hal::Arena* arena = new hal::Arena(kOutputCacheCapacity, 64, 0, 64, /*host_addressable=*/true);  // never destroyed:
  return *arena;                                                                                          // arrays may outlive teardown
}

void release_output_block(void* address) {
  try {
    output_cache().free(reinterpret_cast<uint64_t>(address));
  } catch (...) {  // a destructor must not throw; free only fails on an unknown address
  }
}

py::array new_output_array(const hal_tensor& t) {
  PyObject* descr = numpy_dtypes().at(static_cast<size_t>(t.dtype)).ptr();
  int64_t nbytes = py::reinterpret_borrow<py::dtype>(descr).itemsize();
  for (int32_t d = 0; d < t.ndim; ++d) nbytes *= t.shape[d];
  Py_intptr_t dims[HAL_MAX_DIMS];
  for (int32_t d = 0; d < t.ndim; ++d) dims[d] = static_cast<Py_intptr_t>(t.shape[d]);
  void* data = nullptr;
  uint64_t address = 0;
  if (nbytes >= kCachedOutputBytes) {
    try {
      address = output_cache().allocate(nbytes);
      data = output_cache().host_pointer(address);
    } catch (const hal::ArenaOutOfMemory&) {  // numpy's allocator below
    }
  }
  // numpy's C API directly: py::array(dtype, shape) builds shape and stride vectors on the heap,
  // a fifth of a 4 KiB call.
  auto& api = py::detail::npy_api::get();
  Py_INCREF(descr);  // PyArray_NewFromDescr steals it
  PyObject* array = api.PyArray_NewFromDescr_(api.PyArray_Type_, descr, t.ndim, dims, nullptr, data,
                                              data ? py::detail::npy_api::NPY_ARRAY_WRITEABLE_ : 0, nullptr);
  if (array == nullptr) {
    if (address) release_output_block(reinterpret_cast<void*>(address));
    throw py::error_already_set();
  }
  auto result = py::reinterpret_steal<py::array>(array);
  if (address) {
    py::capsule owner(reinterpret_cast<void*>(address), release_output_block);
    if (api.PyArray_SetBaseObject_(array, owner.release().ptr()) != 0) throw py::error_already_set();
  }
  return result;
}

// One call of a kernel with its outputs inferred: the output descriptors and the error buffer
// that hal_kernel_call points into, kept together (and in place: the call holds their addresses)
// for infer() to report and run() to compute with.
class InferredCall {
 public:
  InferredCall(const hal::ops::Kernel& kernel, hal_tensor* inputs, size_t num_inputs, const hal_attr* attrs, size_t num_attrs)
      : call{inputs, static_cast<int32_t>(num_inputs), outputs_, 0, attrs, static_cast<int32_t>(num_attrs),
             hal::ops::num_threads(), message_, sizeof(message_)} {
    message_[0] = '\0';  // kernels write a message only when they fail; clearing all 1 KiB per call is waste
    check_status(kernel.infer(&call), message_, kernel);
  }
  InferredCall(const InferredCall&) = delete;
  InferredCall& operator=(const InferredCall&) = delete;
  const char* message() const { return message_; }

 private:
  hal_tensor outputs_[HAL_MAX_OUTPUTS]{};
  char message_[1024];

 public:
  hal_kernel_call call;
};

// A kernel's outputs as numpy arrays (held as py::object: a default py::array is an allocated
// empty array).
struct ArrayOutputs {
  py::object arrays[HAL_MAX_OUTPUTS];
  int32_t count = 0;
};

// Runs `kernel` on the numpy arrays inputs[0..n) (C-contiguous, read in place), into `given` when it
// is not None (a sequence of arrays, checked against what the kernel infers), else into new arrays.
// The GIL is released while the kernel computes on kReleaseGilBytes or more.
ArrayOutputs run_on_arrays(const hal::ops::Kernel& kernel, PyObject* const* inputs, size_t n, const hal_attr* attrs,
                           size_t num_attrs, const py::object& given) {
  constexpr size_t kOnStack = 8;  // a call describes its inputs without a heap allocation up to here
  hal_tensor on_stack[kOnStack];
  std::vector<hal_tensor> on_heap(n > kOnStack ? n : 0);
  hal_tensor* tensors = n > kOnStack ? on_heap.data() : on_stack;
  int64_t nbytes = 0;
  for (size_t i = 0; i < n; ++i) {
    py::handle h(inputs[i]);
    if (!py::isinstance<py::array>(h)) {
      raise_hal("InvalidArgumentError", label_of(kernel) + ": input " + std::to_string(i) + " must be a numpy array");
    }
    auto a = py::reinterpret_borrow<py::array>(h);
    if (!(a.flags() & py::array::c_style)) {
      raise_hal("InvalidArgumentError", label_of(kernel) + ": input " + std::to_string(i) +
                                            " is not C-contiguous; kernels read dense row-major buffers without copying "
                                            "(pass np.ascontiguousarray(x))");
    }
    int32_t code = dtype_code_of(a);
    if (code < 0) {
      raise_hal("UnsupportedDTypeError", label_of(kernel) + ": input " + std::to_string(i) + " has dtype " +
                                             std::string(py::str(a.dtype())) + ", which kernels cannot take");
    }
    tensors[i] = describe(code, static_cast<int32_t>(a.ndim()), a.shape(), const_cast<void*>(a.data()), kernel, i);
    nbytes += a.nbytes();
  }
  InferredCall inferred(kernel, tensors, n, attrs, num_attrs);
  hal_kernel_call& call = inferred.call;
  ArrayOutputs result;
  result.count = call.num_outputs;
  py::object out_list;  // the given outputs as a list; null when new arrays are made (no list on that path)
  if (!given.is_none()) {
    out_list = py::list(given);
    const size_t count = py::len(out_list);
    if (static_cast<int32_t>(count) != call.num_outputs) {
      raise_hal("InvalidArgumentError", label_of(kernel) + " has " + std::to_string(call.num_outputs) + " output(s), got " +
                                            std::to_string(count) + " output array(s)");
    }
  }
  for (int32_t i = 0; i < call.num_outputs; ++i) {
    hal_tensor& t = call.outputs[i];
    if (out_list) {
      py::object item = py::reinterpret_borrow<py::list>(out_list)[static_cast<size_t>(i)];
      auto array = py::reinterpret_borrow<py::array>(item);
      bool ok = py::isinstance<py::array>(item) && (array.flags() & py::array::c_style) && array.writeable() &&
                dtype_code_of(array) == t.dtype && array.ndim() == t.ndim && std::equal(t.shape, t.shape + t.ndim, array.shape());
      if (!ok) {
        raise_hal("InvalidArgumentError", label_of(kernel) + ": output " + std::to_string(i) + " must be a writable C-contiguous " +
                                              hal_dtype_name(t.dtype) + " array of the inferred shape");
      }
      result.arrays[i] = std::move(item);
    } else {
      result.arrays[i] = new_output_array(t);
    }
    auto array = py::reinterpret_borrow<py::array>(result.arrays[i]);
    t.data = array.mutable_data();
    nbytes += array.nbytes();
  }
  // Outputs without elements leave nothing to compute, but a kernel would still walk its rows:
  // 2**31 rows of width 0 is a zero-byte array numpy makes at once and minutes of looping.
  bool nothing_to_write = call.num_outputs > 0;
  for (int32_t i = 0; i < call.num_outputs && nothing_to_write; ++i) {
    const hal_tensor& t = call.outputs[i];
    nothing_to_write = std::any_of(t.shape, t.shape + t.ndim, [](int64_t d) { return d == 0; });
  }
  if (nothing_to_write) return result;
  int32_t status;
  if (nbytes >= kReleaseGilBytes) {
    py::gil_scoped_release nogil;
    status = kernel.compute(&call);
  } else {
    status = kernel.compute(&call);
  }
  check_status(status, inferred.message(), kernel);
  return result;
}

// A registered kernel as Python sees it: infer() and run().
struct KernelHandle {
  const hal::ops::Kernel* kernel;

  // [(dtype name, shape)] of the outputs for inputs [(dtype name, shape)].
  py::tuple infer(const std::vector<std::pair<std::string, std::vector<int64_t>>>& inputs, const py::dict& attrs) const {
    std::vector<hal_tensor> tensors;
    for (size_t i = 0; i < inputs.size(); ++i) {
      int32_t code = hal::ops::dtype_from_name(inputs[i].first);
      if (code < 0) {
        raise_hal("UnsupportedDTypeError", label_of(*kernel) + ": input " + std::to_string(i) + " has dtype " + inputs[i].first +
                                               ", which kernels cannot take");
      }
      const auto& shape = inputs[i].second;
      tensors.push_back(describe(code, static_cast<int32_t>(shape.size()), shape.data(), nullptr, *kernel, i));
    }
    KernelAttrs converted = convert_attrs(attrs, label_of(*kernel));
    return output_specs(InferredCall(*kernel, tensors.data(), tensors.size(), converted.attrs.data(), converted.attrs.size()).call);
  }

  // Runs on C-contiguous numpy arrays, into `outputs` when given (checked against infer), else
  // into new arrays; returns the outputs.
  py::list run(const py::list& inputs, const py::dict& attrs, const py::object& outputs) const {
    KernelAttrs converted = convert_attrs(attrs, label_of(*kernel));
    std::vector<PyObject*> arrays;
    arrays.reserve(inputs.size());
    for (py::handle h : inputs) arrays.push_back(h.ptr());
    ArrayOutputs out = run_on_arrays(*kernel, arrays.data(), arrays.size(), converted.attrs.data(), converted.attrs.size(), outputs);
    py::list result(out.count);
    for (int32_t i = 0; i < out.count; ++i) result[static_cast<size_t>(i)] = std::move(out.arrays[i]);
    return result;
  }
};

// ---- numpy entry points -------------------------------------------------------------------------
//
// hal.ops.softmax(x) on a 4 KiB array computes for half a microsecond; the Python around a call
// (building an argument list and an attribute dict, finding the kernel for the dtype, pybind11's
// overload dispatch) took three times that, which numpy and torch, calling one C function, do not
// pay. An entry point is a C function (METH_FASTCALL, no pybind11 dispatch) bound to one
// (domain, op): called with the op's inputs then its attribute values in a fixed order, it runs
// the CPU kernel of the first input's dtype straight away when every input is a numpy array, and
// otherwise hands the call to hal.ops.dispatch.call (DeviceTensors, Python kernels, lists, errors).
class EntryPoint {
 public:
  // attrs: (name, kind) with kind "int", "float" or "str"; general: call(domain, op, inputs, attrs);
  // float32_inputs: positions of inputs that may be given as Python numbers, numpy scalars, lists or
  // tuples (QuantizedMatMul's scales), which become float32 arrays as np.asarray(v, np.float32) makes.
  EntryPoint(std::string domain, std::string op, const std::vector<std::pair<std::string, std::string>>& attrs,
             py::object find, py::object general, std::vector<size_t> float32_inputs)
      : domain_(std::move(domain)),
        op_(std::move(op)),
        find_(std::move(find)),
        general_(std::move(general)),
        float32_inputs_(std::move(float32_inputs)),
        numpy_scalar_(py::module_::import("numpy").attr("generic")) {
    if (attrs.size() > kMaxAttrs) throw py::value_error(op_ + ": an entry point takes at most 8 attributes");
    for (size_t i : float32_inputs_) {
      if (i >= kMaxInputs) throw py::value_error(op_ + ": float32 inputs must be among the first 8");
    }
    for (const auto& [name, kind] : attrs) {
      int32_t code = kind == "int" ? HAL_ATTR_INT : kind == "float" ? HAL_ATTR_FLOAT : kind == "str" ? HAL_ATTR_STRING : -1;
      if (code < 0) throw py::value_error(op_ + ": attribute kind must be int, float or str, got " + kind);
      attr_names_.push_back(name);
      attr_kinds_.push_back(code);
    }
    def_ = PyMethodDef{op_.c_str(), reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(&EntryPoint::trampoline)),
                       METH_FASTCALL, nullptr};
  }

  // The Python callable; it owns this entry point.
  static py::object make(std::unique_ptr<EntryPoint> entry) {
    EntryPoint* raw = entry.get();
    py::capsule self(entry.release(), kCapsuleName, [](PyObject* capsule) {
      delete static_cast<EntryPoint*>(PyCapsule_GetPointer(capsule, kCapsuleName));
    });
    PyObject* fn = PyCFunction_NewEx(&raw->def_, self.ptr(), nullptr);
    if (fn == nullptr) throw py::error_already_set();
    return py::reinterpret_steal<py::object>(fn);
  }

 private:
  static constexpr size_t kMaxAttrs = 8;
  static constexpr size_t kMaxInputs = 8;  // of which float32 inputs may be converted (on the stack)
  static constexpr const char* kCapsuleName = "hal._C.EntryPoint";

  static PyObject* trampoline(PyObject* self, PyObject* const* args, Py_ssize_t nargs) {
    auto* entry = static_cast<EntryPoint*>(PyCapsule_GetPointer(self, kCapsuleName));
    try {
      return entry->call(args, static_cast<size_t>(nargs)).release().ptr();
    } catch (py::error_already_set& e) {
      e.restore();
    } catch (const std::bad_alloc&) {
      PyErr_NoMemory();
    } catch (const std::exception& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    }
    return nullptr;
  }

  py::object call(PyObject* const* args, size_t nargs) {
    size_t num_attrs = attr_names_.size();
    if (nargs < num_attrs + 1) {
      raise_hal("InvalidArgumentError", domain_ + "::" + op_ + " takes its inputs then " + std::to_string(num_attrs) +
                                            " attribute value(s); got " + std::to_string(nargs) + " argument(s)");
    }
    size_t num_inputs = nargs - num_attrs;
    hal_attr attrs[kMaxAttrs];
    for (size_t i = 0; i < num_attrs; ++i) attrs[i] = convert(i, args[num_inputs + i]);
    // Float32 inputs given as numbers or sequences become arrays, and the call goes on with a copy
    // of the argument pointers in which the arrays stand for them.
    PyObject* replaced[kMaxInputs + kMaxAttrs];
    py::object made[kMaxInputs];
    if (!float32_inputs_.empty() && nargs <= kMaxInputs + kMaxAttrs) {  // more is refused by the arity check
      bool any = false;
      for (size_t i : float32_inputs_) {
        if (i < num_inputs && takes_as_float32(args[i])) {
          made[i] = to_float32_array(i, args[i]);
          any = true;
        }
      }
      if (any) {
        std::copy(args, args + nargs, replaced);
        for (size_t i : float32_inputs_) {
          if (made[i]) replaced[i] = made[i].ptr();
        }
        args = replaced;
      }
    }
    bool all_arrays = true;
    auto* ndarray = py::detail::npy_api::get().PyArray_Type_;
    for (size_t i = 0; i < num_inputs && all_arrays; ++i) all_arrays = Py_TYPE(args[i]) == ndarray;
    if (all_arrays) {
      const hal::ops::Kernel* kernel = cpu_kernel(dtype_code_of(py::reinterpret_borrow<py::array>(args[0])));
      if (kernel != nullptr) {
        ArrayOutputs out = run_on_arrays(*kernel, args, num_inputs, attrs, num_attrs, py::none());
        if (out.count == 1) return std::move(out.arrays[0]);
        py::tuple result(out.count);
        for (int32_t i = 0; i < out.count; ++i) result[static_cast<size_t>(i)] = std::move(out.arrays[i]);
        return std::move(result);
      }
    }
    py::tuple inputs(num_inputs);
    for (size_t i = 0; i < num_inputs; ++i) inputs[i] = py::reinterpret_borrow<py::object>(args[i]);
    py::dict attr_dict;
    for (size_t i = 0; i < num_attrs; ++i) {
      const hal_attr& a = attrs[i];
      attr_dict[py::str(attr_names_[i])] = a.kind == HAL_ATTR_INT     ? py::object(py::int_(a.i))
                                           : a.kind == HAL_ATTR_FLOAT ? py::object(py::float_(a.f))
                                                                      : py::reinterpret_borrow<py::object>(args[num_inputs + i]);
    }
    return general_(domain_, op_, inputs, attr_dict);
  }

  // A value that np.asarray(value, np.float32) turns into the array a user means: a number, a
  // numpy scalar, a list or a tuple (and a str, which it refuses with a clear message). Arrays,
  // DeviceTensors and anything else pass as given.
  bool takes_as_float32(PyObject* value) const {
    return PyFloat_Check(value) || PyLong_Check(value) || PyList_Check(value) || PyTuple_Check(value) ||
           PyUnicode_Check(value) || PyObject_TypeCheck(value, reinterpret_cast<PyTypeObject*>(numpy_scalar_.ptr()));
  }

  py::object to_float32_array(size_t i, PyObject* value) const {
    auto& api = py::detail::npy_api::get();
    PyObject* descr = numpy_dtypes().at(HAL_FLOAT32).ptr();
    Py_INCREF(descr);  // PyArray_FromAny steals it
    PyObject* array = api.PyArray_FromAny_(value, descr, 0, 0,
                                           py::detail::npy_api::NPY_ARRAY_C_CONTIGUOUS_ | py::detail::npy_api::NPY_ARRAY_ALIGNED_ |
                                               py::detail::npy_api::NPY_ARRAY_FORCECAST_ | py::detail::npy_api::NPY_ARRAY_ENSUREARRAY_,
                                           nullptr);
    if (array == nullptr) {
      PyErr_Clear();  // numpy's ValueError or TypeError; the message below says what was expected
      raise_hal("InvalidArgumentError", domain_ + "::" + op_ + ": input " + std::to_string(i) +
                                            " must be float32 values (a number, a list of numbers or a float32 array), got " +
                                            std::string(py::repr(value)));
    }
    return py::reinterpret_steal<py::object>(array);
  }

  // Attribute i from its Python value: ints (and bools) for "int", any real number for "float".
  hal_attr convert(size_t i, PyObject* value) const {
    hal_attr a{attr_names_[i].c_str(), attr_kinds_[i], 0, 0.0, nullptr};
    const char* expected = nullptr;
    if (a.kind == HAL_ATTR_FLOAT) {
      a.f = PyFloat_AsDouble(value);
      if (a.f == -1.0 && PyErr_Occurred()) expected = "a number";
    } else if (a.kind == HAL_ATTR_INT) {
      a.i = PyLong_AsLongLong(value);
      if (a.i == -1 && PyErr_Occurred()) expected = "an int";
    } else {
      a.s = PyUnicode_Check(value) ? PyUnicode_AsUTF8(value) : nullptr;
      if (a.s == nullptr) expected = "a str";
    }
    if (expected != nullptr) {
      PyErr_Clear();
      raise_hal("InvalidArgumentError", domain_ + "::" + op_ + ": attribute '" + attr_names_[i] + "' must be " + expected +
                                            ", got " + std::string(py::repr(value)));
    }
    return a;
  }

  // The C++ CPU kernel for a dtype, found through hal.ops.registry.find (which knows Python
  // kernels too) and kept: the registry never removes or replaces a kernel. nullptr when the
  // kernel is a Python one or there is none (the general path then runs it or says why).
  const hal::ops::Kernel* cpu_kernel(int32_t code) {
    if (code < 0 || code >= HAL_NUM_DTYPES) return nullptr;
    if (kernels_[code] != nullptr) return kernels_[code];
    py::object found;
    try {
      found = find_(domain_, op_, "cpu", hal_dtype_name(code));
    } catch (py::error_already_set&) {
      return nullptr;
    }
    if (py::isinstance<KernelHandle>(found)) kernels_[code] = found.cast<const KernelHandle&>().kernel;
    return kernels_[code];
  }

  std::string domain_, op_;
  std::vector<std::string> attr_names_;
  std::vector<int32_t> attr_kinds_;
  py::object find_, general_;
  std::vector<size_t> float32_inputs_;
  py::object numpy_scalar_;  // numpy.generic
  const hal::ops::Kernel* kernels_[HAL_NUM_DTYPES] = {};
  PyMethodDef def_{};
};

}  // namespace

void bind_kernels(py::module_& m) {
  py::class_<KernelHandle>(m, "Kernel", "A registered kernel: (domain, op, backend, dtype) -> infer and compute.")
      .def_property_readonly("domain", [](const KernelHandle& k) { return k.kernel->domain; })
      .def_property_readonly("op", [](const KernelHandle& k) { return k.kernel->op; })
      .def_property_readonly("backend", [](const KernelHandle& k) { return k.kernel->backend; })
      .def_property_readonly("dtype", [](const KernelHandle& k) { return k.kernel->dtype; })
      .def_property_readonly("origin", [](const KernelHandle& k) { return k.kernel->origin; })
      .def_property_readonly("source", [](const KernelHandle& k) { return k.kernel->source; })
      .def("infer", &KernelHandle::infer, py::arg("inputs"), py::arg("attrs"),
           "Output (dtype name, shape) pairs for inputs given as (dtype name, shape); raises the kernel's "
           "InvalidArgumentError / UnsupportedDTypeError when it rejects them.")
      .def("run", &KernelHandle::run, py::arg("inputs"), py::arg("attrs"), py::arg("outputs") = py::none(),
           "Runs on C-contiguous numpy arrays (read in place, never copied) into `outputs` or new arrays; the "
           "GIL is released while the kernel computes on 64 KiB or more.")
      .def("__repr__", [](const KernelHandle& k) {
        return "<hal._C.Kernel " + label_of(*k.kernel) + " " + k.kernel->backend + "/" + k.kernel->dtype + " from " + k.kernel->origin + ">";
      });

  m.def(
      "entry_point",
      [](const std::string& domain, const std::string& op, const std::vector<std::pair<std::string, std::string>>& attrs,
         py::object find, py::object general, std::vector<size_t> float32_inputs) {
        return EntryPoint::make(
            std::make_unique<EntryPoint>(domain, op, attrs, std::move(find), std::move(general), std::move(float32_inputs)));
      },
      py::arg("domain"), py::arg("op"), py::arg("attrs"), py::arg("find"), py::arg("general"),
      py::arg("float32_inputs") = std::vector<size_t>{},
      "Internal: a fast callable for (domain, op) taking the inputs then the values of `attrs` ((name, kind) with "
      "kind int/float/str) positionally; numpy inputs run the CPU kernel found with find(domain, op, 'cpu', dtype) "
      "directly, anything else goes to general(domain, op, inputs, attrs). Inputs at the positions in "
      "`float32_inputs` given as numbers, numpy scalars, lists or tuples become float32 arrays first.");
  m.def(
      "find_kernel",
      [](const std::string& domain, const std::string& op, const std::string& backend, const std::string& dtype) {
        return registry_call([&] { return KernelHandle{&hal::ops::Registry::global().find(domain, op, backend, dtype)}; });
      },
      py::arg("domain"), py::arg("op"), py::arg("backend"), py::arg("dtype"),
      "The kernel for (domain, op, backend, dtype); hal.KernelNotFoundError naming the backends that have one.");
  m.def(
      "has_kernel",
      [](const std::string& domain, const std::string& op, const std::string& backend, const std::string& dtype) {
        return hal::ops::Registry::global().try_find(domain, op, backend, dtype) != nullptr;
      },
      py::arg("domain"), py::arg("op"), py::arg("backend"), py::arg("dtype"));
  m.def(
      "kernels",
      [] {
        py::list out;
        for (const auto& k : hal::ops::Registry::global().list()) {
          out.append(py::make_tuple(k.domain, k.op, k.backend, k.dtype, k.origin, k.source));
        }
        return out;
      },
      "Every registered kernel as (domain, op, backend, dtype, origin, source).");
  m.def(
      "load_kernel_library",
      [](const std::string& path) { registry_call([&] { hal::ops::Registry::global().load_library(path); }); },
      py::arg("path"),
      "dlopens a kernel library and registers its kernels (all or none); hal.KernelLibraryError when it cannot be "
      "loaded, has no hal_register_kernels, or registers a kernel that exists.");
  m.def(
      "empty_output_cache", [] { return output_cache().empty_cache(); },
      "Returns the cached blocks of kernel outputs that no array uses any more to the OS; the bytes released.");
  m.def(
      "output_cache_stats",
      [] {
        hal::ArenaStats st = output_cache().stats();
        py::dict d;
        d["live_bytes"] = st.allocated_bytes;
        d["cached_bytes"] = st.cached_bytes;
        d["capacity_bytes"] = st.capacity_bytes;
        d["cache_hits"] = st.cache_hits;
        d["cache_misses"] = st.cache_misses;
        return d;
      },
      "Bytes of kernel outputs (numpy arrays of 1 MiB or more) held live and cached, the cap, hits and misses.");
  m.def("set_num_threads", &hal::ops::set_num_threads, py::arg("n"), "Threads each kernel call may use (at least 1).");
  m.def("get_num_threads", &hal::ops::num_threads);
  m.def(
      "_set_numpy_dtypes", [](const py::list& dtypes) {
        auto& table = numpy_dtypes();
        table.clear();
        for (auto d : dtypes) table.push_back(py::reinterpret_borrow<py::object>(d));
      },
      "Internal: the numpy dtype of each hal_dtype code, in code order (None where numpy has none).");
  m.attr("KERNEL_ABI_VERSION") = HAL_KERNEL_ABI_VERSION;
  m.attr("KERNEL_DTYPES") = [] {
    py::list names;
    for (int32_t code = 0; code < HAL_NUM_DTYPES; ++code) names.append(hal_dtype_name(code));
    return py::tuple(names);
  }();
  registry_call([] { hal::ops::register_builtin_kernels(); });
}

}  // namespace hal::python
