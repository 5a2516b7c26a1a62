// What hal._C's two binding files share: the kernel half (kernel_bindings.cpp: hal._C.Kernel,
// the registry queries, the numpy entry points of hal.ops) is bound into the module that
// bindings.cpp defines.
#pragma once

#include <pybind11/pybind11.h>

#include <cstdint>

namespace hal::python {

// Copies and kernels at least this large run with the GIL released. Smaller ones finish in a few
// microseconds, less than giving the GIL away and waiting to get it back from a busy thread (up to
// the 5 ms switch interval) would cost.
constexpr int64_t kReleaseGilBytes = 64 * 1024;

// Adds hal._C.Kernel, find_kernel, kernels, load_kernel_library, entry_point, the output cache
// and thread-count functions to `m`, and registers the built-in kernels.
void bind_kernels(pybind11::module_& m);

}  // namespace hal::python
