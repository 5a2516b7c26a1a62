// DLPack export: wrap a memory range owned by a Python object in a PyCapsule.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>
#include <optional>
#include <vector>

namespace hal {
namespace dlpack {

struct ExportSpec {
  uint64_t data_ptr = 0;
  std::vector<int64_t> shape;
  std::optional<std::vector<int64_t>> strides;  // in elements; nullopt = compact row-major
  int64_t dtype_code = 0;
  int64_t dtype_bits = 0;
  int64_t device_type = 1;
  int64_t device_id = 0;
  bool versioned = true;
  bool read_only = false;
};

// Returns a capsule named "dltensor" (versioned=false) or "dltensor_versioned".
// `owner` is kept alive until the consumer calls the deleter (or, if never
// consumed, until the capsule is destroyed). The deleter may run on any
// thread. Throws std::invalid_argument on a malformed spec and
// pybind11::buffer_error for read_only with the unversioned protocol (which
// cannot signal read-only memory).
pybind11::capsule make_capsule(pybind11::handle owner, const ExportSpec& spec);

}  // namespace dlpack
}  // namespace hal
