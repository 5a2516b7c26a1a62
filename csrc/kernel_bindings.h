// What hal._C's binding files share: the kernel half (kernel_bindings.cpp: hal._C.Kernel, the
// registry queries, the numpy entry points of hal.ops) and hal.llm's fused decoder
// (llm_bindings.cpp) are bound into the module that bindings.cpp defines.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <string>

namespace hal::python {

// Copies and kernels at least this large run with the GIL released. Smaller ones finish in a few
// microseconds, less than giving the GIL away and waiting to get it back from a busy thread (up to
// the 5 ms switch interval) would cost.
constexpr int64_t kReleaseGilBytes = 64 * 1024;

// Raises the hal.errors class `name` (looked up at raise time: hal is fully imported by then).
[[noreturn]] void raise_hal(const char* name, const std::string& message);

// The hal_dtype code of a numpy array's dtype, or -1 (the table is set by hal.ops).
int32_t dtype_code_of(const pybind11::array& a);

// Adds hal._C.Kernel, find_kernel, kernels, load_kernel_library, entry_point, the output cache
// and thread-count functions to `m`, and registers the built-in kernels.
void bind_kernels(pybind11::module_& m);

// Adds hal._C.DecoderLayers (hal.llm's fused decode step on the CPU; csrc/llm/decoder_layers.h).
void bind_llm(pybind11::module_& m);

}  // namespace hal::python
