#include "dlpack/dlpack_import.h"

#include <cstring>
#include <stdexcept>
#include <string>

#include "dlpack/dlpack.h"

namespace hal {
namespace dlpack {
namespace {

constexpr const char* kName = "dltensor";
constexpr const char* kNameVersioned = "dltensor_versioned";
constexpr const char* kUsedName = "used_dltensor";
constexpr const char* kUsedNameVersioned = "used_dltensor_versioned";

[[noreturn]] void bad(const std::string& why) { throw std::invalid_argument("from_dlpack_capsule: " + why); }

uint64_t checked_nbytes(const std::vector<int64_t>& shape, unsigned bits, unsigned lanes) {
  for (int64_t d : shape) {
    if (d == 0) return 0;
  }
  uint64_t total_bits = static_cast<uint64_t>(bits) * lanes;
  for (int64_t d : shape) {
    if (__builtin_mul_overflow(total_bits, static_cast<uint64_t>(d), &total_bits)) {
      bad("tensor size overflows 64 bits");
    }
  }
  return total_bits / 8 + (total_bits % 8 != 0 ? 1 : 0);
}

}  // namespace

DLPackImport::DLPackImport(pybind11::handle capsule) {
  PyObject* cap = capsule.ptr();
  if (cap == nullptr || !PyCapsule_CheckExact(cap)) bad("expected a DLPack PyCapsule");
  const char* name = PyCapsule_GetName(cap);
  if (name == nullptr) {
    PyErr_Clear();
    bad("capsule has no name; expected \"dltensor\" or \"dltensor_versioned\"");
  }
  if (std::strcmp(name, kName) == 0) {
    versioned_ = false;
  } else if (std::strcmp(name, kNameVersioned) == 0) {
    versioned_ = true;
  } else if (std::strcmp(name, kUsedName) == 0 || std::strcmp(name, kUsedNameVersioned) == 0) {
    bad("the capsule was already consumed (its name is \"" + std::string(name) + "\")");
  } else {
    bad("capsule is named \"" + std::string(name) + "\"; expected \"dltensor\" or \"dltensor_versioned\"");
  }

  void* managed = PyCapsule_GetPointer(cap, name);
  if (managed == nullptr) {
    PyErr_Clear();
    bad("capsule holds a NULL tensor");
  }

  const DLTensor* t = nullptr;
  if (versioned_) {
    auto* m = static_cast<DLManagedTensorVersioned*>(managed);
    if (m->version.major != DLPACK_MAJOR_VERSION) {
      bad("unsupported DLPack major version " + std::to_string(m->version.major) + " (this build supports " +
          std::to_string(DLPACK_MAJOR_VERSION) + ")");
    }
    read_only_ = (m->flags & DLPACK_FLAG_BITMASK_READ_ONLY) != 0;
    t = &m->dl_tensor;
  } else {
    t = &static_cast<DLManagedTensor*>(managed)->dl_tensor;
  }

  // Validate and copy everything before consuming the capsule.
  if (t->ndim < 0) bad("negative ndim " + std::to_string(t->ndim));
  if (t->ndim > 0 && t->shape == nullptr) bad("NULL shape with ndim " + std::to_string(t->ndim));
  shape_.assign(t->shape, t->shape + t->ndim);
  for (int64_t d : shape_) {
    if (d < 0) bad("negative dimension " + std::to_string(d));
  }
  if (t->strides != nullptr && t->ndim > 0) strides_.emplace(t->strides, t->strides + t->ndim);
  dtype_code_ = t->dtype.code;
  dtype_bits_ = t->dtype.bits;
  dtype_lanes_ = t->dtype.lanes;
  device_type_ = static_cast<int>(t->device.device_type);
  device_id_ = t->device.device_id;
  data_ptr_ = reinterpret_cast<uint64_t>(t->data) + t->byte_offset;
  nbytes_ = checked_nbytes(shape_, t->dtype.bits, t->dtype.lanes);

  if (PyCapsule_SetName(cap, versioned_ ? kUsedNameVersioned : kUsedName) != 0) {
    throw pybind11::error_already_set();
  }
  managed_ = managed;
}

DLPackImport::~DLPackImport() {
  // Host views keep the Python object alive, so no pins remain here.
  call_deleter();
}

void DLPackImport::call_deleter() {
  if (deleted_ || managed_ == nullptr) return;
  deleted_ = true;
  if (versioned_) {
    auto* m = static_cast<DLManagedTensorVersioned*>(managed_);
    if (m->deleter != nullptr) m->deleter(m);
  } else {
    auto* m = static_cast<DLManagedTensor*>(managed_);
    if (m->deleter != nullptr) m->deleter(m);
  }
  managed_ = nullptr;
}

void DLPackImport::release() {
  release_requested_ = true;
  if (pins_ == 0) call_deleter();
}

bool DLPackImport::is_c_contiguous() const {
  if (!strides_) return true;
  int64_t expected = 1;
  for (size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] == 0) return true;  // empty: any strides describe it
  }
  for (size_t i = shape_.size(); i-- > 0;) {
    if (shape_[i] != 1 && (*strides_)[i] != expected) return false;
    expected *= shape_[i];
  }
  return true;
}

void* DLPackImport::pin_host_span(uint64_t* len) {
  if (release_requested_) throw std::invalid_argument("host_buffer: the imported tensor was already released");
  if (device_type_ != kDLCPU) {
    throw std::invalid_argument("host_buffer: the imported tensor lives on DLPack device type " +
                                std::to_string(device_type_) + ", not kDLCPU (1); it is not host memory");
  }
  uint64_t span = nbytes_;
  if (nbytes_ != 0 && !is_c_contiguous()) {
    const uint64_t item_bits = static_cast<uint64_t>(dtype_bits_) * static_cast<uint64_t>(dtype_lanes_);
    if (item_bits % 8 != 0) throw std::invalid_argument("host_buffer: strided sub-byte tensors are not supported");
    uint64_t last = 0;  // element index of the last element
    for (size_t i = 0; i < shape_.size(); ++i) {
      const int64_t s = (*strides_)[i];
      if (s < 0) throw std::invalid_argument("host_buffer: tensors with negative strides are not supported");
      last += static_cast<uint64_t>(shape_[i] - 1) * static_cast<uint64_t>(s);
    }
    span = (last + 1) * (item_bits / 8);
  }
  *len = span;
  pins_ += 1;
  return reinterpret_cast<void*>(static_cast<uintptr_t>(data_ptr_));
}

void DLPackImport::unpin() {
  pins_ -= 1;
  if (pins_ == 0 && release_requested_) call_deleter();
}

}  // namespace dlpack
}  // namespace hal
