// DLPack import: take ownership of a producer's managed tensor from a capsule.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace hal {
namespace dlpack {

class DLPackImport {
 public:
  // Consumes a "dltensor" or "dltensor_versioned" capsule: validates it,
  // renames it "used_dltensor"/"used_dltensor_versioned" and takes ownership.
  // std::invalid_argument if it is not an unconsumed DLPack capsule (the
  // capsule is left untouched then).
  explicit DLPackImport(pybind11::handle capsule);
  ~DLPackImport();
  DLPackImport(const DLPackImport&) = delete;
  DLPackImport& operator=(const DLPackImport&) = delete;

  uint64_t data_ptr() const { return data_ptr_; }
  const std::vector<int64_t>& shape() const { return shape_; }
  const std::optional<std::vector<int64_t>>& strides() const { return strides_; }
  int dtype_code() const { return dtype_code_; }
  int dtype_bits() const { return dtype_bits_; }
  int dtype_lanes() const { return dtype_lanes_; }
  int device_type() const { return device_type_; }
  int device_id() const { return device_id_; }
  bool read_only() const { return read_only_; }
  bool versioned() const { return versioned_; }
  uint64_t nbytes() const { return nbytes_; }
  bool is_c_contiguous() const;

  // True once the producer's deleter has run (or will run as soon as the last
  // host view is gone).
  bool released() const { return release_requested_; }

  // Calls the producer's deleter once. While host views are pinned the call
  // is deferred until the last one is released.
  void release();

  // Host byte range for a host view: [data_ptr, data_ptr + len). For compact
  // tensors len == nbytes; for strided tensors with non-negative strides it
  // spans through the last element. Pins the import (balance with unpin()).
  // std::invalid_argument if released, not on the CPU, or negatively strided.
  void* pin_host_span(uint64_t* len);
  void unpin();

 private:
  void call_deleter();

  void* managed_ = nullptr;
  bool versioned_ = false;
  bool deleted_ = false;
  bool release_requested_ = false;
  int pins_ = 0;

  uint64_t data_ptr_ = 0;
  std::vector<int64_t> shape_;
  std::optional<std::vector<int64_t>> strides_;
  int dtype_code_ = 0;
  int dtype_bits_ = 0;
  int dtype_lanes_ = 1;
  int device_type_ = 0;
  int device_id_ = 0;
  bool read_only_ = false;
  uint64_t nbytes_ = 0;
};

}  // namespace dlpack
}  // namespace hal
