#include "dlpack/dlpack_export.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "dlpack/dlpack.h"

namespace hal {
namespace dlpack {
namespace {

constexpr const char* kName = "dltensor";
constexpr const char* kNameVersioned = "dltensor_versioned";

// Everything one exported tensor needs; manager_ctx of either managed struct.
struct ExportHolder {
  PyObject* owner = nullptr;  // strong reference
  std::vector<int64_t> shape;
  std::vector<int64_t> strides;
  DLManagedTensor legacy{};
  DLManagedTensorVersioned versioned{};
};

bool interpreter_gone() {
  if (!Py_IsInitialized()) return true;
#if PY_VERSION_HEX >= 0x030D0000
  const bool finalizing = Py_IsFinalizing() != 0;
#else
  const bool finalizing = _Py_IsFinalizing() != 0;
#endif
  // During finalization only the thread that holds the GIL may still touch
  // objects; any other thread would block forever in PyGILState_Ensure.
  return finalizing && PyGILState_Check() == 0;
}

// Runs on whatever thread the consumer frees the tensor from.
void destroy_holder(ExportHolder* holder) {
  if (holder->owner != nullptr && !interpreter_gone()) {
    PyGILState_STATE gil = PyGILState_Ensure();
    Py_DECREF(holder->owner);
    PyGILState_Release(gil);
  }
  // If the interpreter is gone the owner is intentionally leaked.
  delete holder;
}

void legacy_deleter(DLManagedTensor* self) { destroy_holder(static_cast<ExportHolder*>(self->manager_ctx)); }

void versioned_deleter(DLManagedTensorVersioned* self) {
  destroy_holder(static_cast<ExportHolder*>(self->manager_ctx));
}

// Called when the capsule dies; frees the tensor only if nobody consumed it.
template <typename Managed>
void capsule_destructor_impl(PyObject* capsule, const char* name) {
  if (PyCapsule_IsValid(capsule, name) == 0) return;  // consumed (renamed "used_...")
#if PY_VERSION_HEX >= 0x030C0000
  PyObject* saved = PyErr_GetRaisedException();
#else
  PyObject *type = nullptr, *value = nullptr, *traceback = nullptr;
  PyErr_Fetch(&type, &value, &traceback);
#endif
  auto* managed = static_cast<Managed*>(PyCapsule_GetPointer(capsule, name));
  if (managed != nullptr && managed->deleter != nullptr) managed->deleter(managed);
  PyErr_Clear();
#if PY_VERSION_HEX >= 0x030C0000
  PyErr_SetRaisedException(saved);
#else
  PyErr_Restore(type, value, traceback);
#endif
}

void legacy_capsule_destructor(PyObject* capsule) { capsule_destructor_impl<DLManagedTensor>(capsule, kName); }

void versioned_capsule_destructor(PyObject* capsule) {
  capsule_destructor_impl<DLManagedTensorVersioned>(capsule, kNameVersioned);
}

void check_spec(const ExportSpec& spec) {
  if (spec.dtype_code < 0 || spec.dtype_code > 255) {
    throw std::invalid_argument("to_dlpack: dtype_code must be in [0, 255], got " + std::to_string(spec.dtype_code));
  }
  if (spec.dtype_bits < 1 || spec.dtype_bits > 255) {
    throw std::invalid_argument("to_dlpack: dtype_bits must be in [1, 255], got " + std::to_string(spec.dtype_bits));
  }
  if (spec.device_type < 1 || spec.device_type > INT32_MAX) {
    throw std::invalid_argument("to_dlpack: device_type must be a positive DLDeviceType, got " +
                                std::to_string(spec.device_type));
  }
  if (spec.device_id < 0 || spec.device_id > INT32_MAX) {
    throw std::invalid_argument("to_dlpack: device_id must be in [0, 2**31), got " + std::to_string(spec.device_id));
  }
  if (spec.shape.size() > static_cast<size_t>(INT32_MAX)) throw std::invalid_argument("to_dlpack: too many dims");
  for (size_t i = 0; i < spec.shape.size(); ++i) {
    if (spec.shape[i] < 0) {
      throw std::invalid_argument("to_dlpack: shape[" + std::to_string(i) + "] is negative (" +
                                  std::to_string(spec.shape[i]) + ")");
    }
  }
  if (spec.strides && spec.strides->size() != spec.shape.size()) {
    throw std::invalid_argument("to_dlpack: strides has " + std::to_string(spec.strides->size()) +
                                " entries but shape has " + std::to_string(spec.shape.size()));
  }
  if (spec.read_only && !spec.versioned) {
    throw pybind11::buffer_error(
        "to_dlpack: read-only memory cannot be exported with the unversioned DLPack protocol; "
        "the consumer must request max_version >= (1, 0)");
  }
}

}  // namespace

pybind11::capsule make_capsule(pybind11::handle owner, const ExportSpec& spec) {
  check_spec(spec);

  auto* holder = new ExportHolder();
  holder->shape = spec.shape;
  if (spec.strides) {
    holder->strides = *spec.strides;
  } else {
    // Always hand consumers explicit strides (DLPack >= 1.2 requires them).
    holder->strides.assign(spec.shape.size(), 1);
    int64_t step = 1;
    for (size_t i = spec.shape.size(); i-- > 0;) {
      holder->strides[i] = step;
      step *= std::max<int64_t>(spec.shape[i], 1);
    }
  }

  DLTensor t{};
  t.data = reinterpret_cast<void*>(static_cast<uintptr_t>(spec.data_ptr));
  t.device.device_type = static_cast<DLDeviceType>(spec.device_type);
  t.device.device_id = static_cast<int32_t>(spec.device_id);
  t.ndim = static_cast<int32_t>(spec.shape.size());
  t.dtype.code = static_cast<uint8_t>(spec.dtype_code);
  t.dtype.bits = static_cast<uint8_t>(spec.dtype_bits);
  t.dtype.lanes = 1;
  t.shape = holder->shape.empty() ? nullptr : holder->shape.data();
  t.strides = holder->strides.empty() ? nullptr : holder->strides.data();
  t.byte_offset = 0;

  void* managed = nullptr;
  const char* name = nullptr;
  PyCapsule_Destructor destructor = nullptr;
  if (spec.versioned) {
    DLManagedTensorVersioned& m = holder->versioned;
    m.version.major = DLPACK_MAJOR_VERSION;
    m.version.minor = DLPACK_MINOR_VERSION;
    m.manager_ctx = holder;
    m.deleter = versioned_deleter;
    m.flags = spec.read_only ? DLPACK_FLAG_BITMASK_READ_ONLY : 0;
    m.dl_tensor = t;
    managed = &m;
    name = kNameVersioned;
    destructor = versioned_capsule_destructor;
  } else {
    DLManagedTensor& m = holder->legacy;
    m.dl_tensor = t;
    m.manager_ctx = holder;
    m.deleter = legacy_deleter;
    managed = &m;
    name = kName;
    destructor = legacy_capsule_destructor;
  }

  PyObject* capsule = PyCapsule_New(managed, name, destructor);
  if (capsule == nullptr) {
    delete holder;  // owner not yet referenced
    throw pybind11::error_already_set();
  }
  // Take the owner reference only once the capsule exists, so every path
  // that frees the holder after this point also drops it.
  holder->owner = owner.ptr();
  Py_XINCREF(holder->owner);
  return pybind11::reinterpret_steal<pybind11::capsule>(capsule);
}

}  // namespace dlpack
}  // namespace hal
