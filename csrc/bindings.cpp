// hal._C: the Python binding of the native core. Only argument conversion,
// buffer acquisition and GIL handling live here; the logic is in
// csrc/memory (Arena) and csrc/dlpack (DLPack export/import); kernels are
// bound in kernel_bindings.cpp.
#include <pybind11/pybind11.h>
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cinttypes>
#include <cstdio>
#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dlpack/dlpack_export.h"
#include "dlpack/dlpack_import.h"
#include "kernel_bindings.h"
#include "memory/arena.h"

namespace py = pybind11;

namespace {

using hal::python::kReleaseGilBytes;

template <typename F>
void run_copy(int64_t nbytes, F&& copy) {
  if (nbytes >= kReleaseGilBytes) {
    py::gil_scoped_release nogil;
    copy();
  } else {
    copy();
  }
}

// A C-contiguous host buffer argument, held for the duration of one call.
class BufferArg {
 public:
  BufferArg(py::handle obj, bool writable, const char* what, const char* arg) {
    if (PyObject_GetBuffer(obj.ptr(), &view_, PyBUF_STRIDES) != 0) throw py::error_already_set();
    if (PyBuffer_IsContiguous(&view_, 'C') == 0) {
      PyBuffer_Release(&view_);
      throw py::value_error(std::string(what) + ": " + arg + " must be a C-contiguous buffer");
    }
    if (writable && view_.readonly != 0) {
      PyBuffer_Release(&view_);
      throw py::value_error(std::string(what) + ": " + arg + " is a read-only buffer; a writable one is needed");
    }
  }
  ~BufferArg() { PyBuffer_Release(&view_); }
  BufferArg(const BufferArg&) = delete;
  BufferArg& operator=(const BufferArg&) = delete;

  void* data() const { return view_.buf; }
  int64_t nbytes() const { return static_cast<int64_t>(view_.len); }

 private:
  Py_buffer view_{};
};

// A pinned range of host memory exported through the buffer protocol. It
// keeps its owner (Arena or DLPackImport) alive and unpins on destruction,
// so memory seen through a memoryview / numpy array is never freed under it.
struct HostRegion {
  py::object owner;
  void* ptr = nullptr;
  uint64_t len = 0;
  bool readonly = false;
  std::function<void()> on_release;

  ~HostRegion() {
    if (on_release) on_release();
  }
};

// Takes over a pin already held; on failure the pin is released.
py::object make_region(py::object owner, void* ptr, uint64_t len, bool readonly, std::function<void()> unpin) {
  auto region = std::make_unique<HostRegion>();
  region->on_release = std::move(unpin);  // from here the pin is owned by region
  region->owner = std::move(owner);
  region->ptr = ptr;
  region->len = len;
  region->readonly = readonly;
  return py::cast(std::move(region));
}

py::object memoryview_of(const py::object& exporter) {
  PyObject* mv = PyMemoryView_FromObject(exporter.ptr());
  if (mv == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(mv);
}

py::object dlpack_host_region(hal::dlpack::DLPackImport& imp) {
  py::object self = py::cast(&imp, py::return_value_policy::reference);
  uint64_t len = 0;
  void* ptr = imp.pin_host_span(&len);
  return make_region(self, ptr, len, imp.read_only(), [&imp] { imp.unpin(); });
}

py::dict stats_dict(const hal::ArenaStats& s) {
  py::dict d;
  d["allocated_bytes"] = s.allocated_bytes;
  d["requested_bytes"] = s.requested_bytes;
  d["reserved_bytes"] = s.reserved_bytes;
  d["cached_bytes"] = s.cached_bytes;
  d["peak_allocated_bytes"] = s.peak_allocated_bytes;
  d["peak_reserved_bytes"] = s.peak_reserved_bytes;
  d["capacity_bytes"] = s.capacity_bytes;
  d["num_allocs"] = s.num_allocs;
  d["num_frees"] = s.num_frees;
  d["active_allocs"] = s.active_allocs;
  d["cache_hits"] = s.cache_hits;
  d["cache_misses"] = s.cache_misses;
  d["num_ooms"] = s.num_ooms;
  return d;
}

// A writable memoryview of a live block, pinned until the view is gone (which keeps the arena
// alive): host_buffer for host-addressable arenas, emulation_buffer for a simulator's own kernels.
py::object block_view(py::object self, uint64_t address, bool for_emulation) {
  auto& a = self.cast<hal::Arena&>();
  uint64_t len = 0;
  void* ptr = for_emulation ? a.pin_block_for_emulation(address, &len) : a.pin_block(address, &len);
  hal::Arena* ap = &a;
  return memoryview_of(make_region(self, ptr, len, false, [ap, address] { ap->unpin(address); }));
}

std::string arena_repr(const hal::Arena& a) {
  const hal::ArenaStats s = a.stats();
  char buf[320];
  std::snprintf(buf, sizeof(buf),
                "<hal._C.Arena capacity=%" PRIu64 " granularity=%" PRIu64 " padding=%" PRIu64
                " base_alignment=%" PRIu64 " host_addressable=%s caching=%s allocated=%" PRIu64
                " reserved=%" PRIu64 " active_allocs=%" PRIu64 ">",
                a.capacity_bytes(), a.granularity(), a.padding(), a.base_alignment(),
                a.host_addressable() ? "True" : "False", a.caching() ? "True" : "False", s.allocated_bytes,
                s.reserved_bytes, s.active_allocs);
  return buf;
}


}  // namespace

PYBIND11_MODULE(_C, m) {
  m.doc() =
      "hal._C: the native core of hal.\n\n"
      "Arena -- the device memory of one simulated (or host) device: a thread-safe caching\n"
      "allocator with a chip's allocation rule and an enforced capacity, plus bounds-checked,\n"
      "GIL-free copies.\n"
      "to_dlpack / from_dlpack_capsule / DLPackImport -- DLPack (1.0 and legacy) export and import.";

  // ---------------------------------------------------------------- errors
  auto& oom_exc = py::register_exception<hal::ArenaOutOfMemory>(m, "ArenaOutOfMemory", PyExc_MemoryError);
  oom_exc.attr("__doc__") =
      "An Arena allocation did not fit: the device capacity is exhausted, or the host could not back "
      "the block. The message gives the bytes requested, the size they occupy under the allocation "
      "rule, the free bytes, the capacity and what is held in the cache. Subclass of MemoryError.";

  // ---------------------------------------------------------------- host views
  py::class_<HostRegion>(m, "_HostRegion", py::buffer_protocol(),
                         "Internal: a pinned host byte range exported through the buffer protocol. "
                         "Keeps its Arena / DLPackImport alive while any view of it exists.")
      .def_buffer([](HostRegion& r) {
        return py::buffer_info(r.ptr, 1, "B", 1, {static_cast<py::ssize_t>(r.len)}, {py::ssize_t{1}},
                               r.readonly);
      })
      .def("__len__", [](const HostRegion& r) { return r.len; }, "Length in bytes.");

  // ---------------------------------------------------------------- Arena
  py::class_<hal::Arena>(m, "Arena", R"doc(
The device memory of one simulated (or host) device.

A caching allocator over host memory. A request of n bytes occupies
``round_up(max(n, 1), granularity) + padding`` bytes of the ``capacity_bytes``
device capacity (AscendCL's aclrtMalloc rule is granularity=32, padding=32).
Capacity is enforced by accounting only: nothing is reserved up front, and each
block gets its own lazily-mapped host allocation, never touched on allocate.

Block addresses are multiples of ``base_alignment``. With
``host_addressable=False`` (simulated chips) they are simulated device virtual
addresses (from 2**48 up) that Python can only reach through the copy calls;
with ``host_addressable=True`` (the CPU device) the address is the host pointer.

Freed blocks go to a cache (``caching=True``) and are reused by best fit for
requests at most 25% smaller. All methods are thread-safe; copies run without
the GIL (those of 64 KiB and more).
)doc")
      .def(py::init<int64_t, int64_t, int64_t, int64_t, bool, bool>(), py::arg("capacity_bytes"),
           py::arg("granularity") = 1, py::arg("padding") = 0, py::arg("base_alignment") = 64,
           py::arg("host_addressable") = false, py::arg("caching") = true,
           "Create an arena. ValueError unless capacity_bytes >= 1, 1 <= granularity <= capacity_bytes, "
           "0 <= padding < capacity_bytes and base_alignment is a power of two in [8, 2**30].")
      .def_property_readonly("capacity_bytes", &hal::Arena::capacity_bytes, "Device capacity in bytes.")
      .def_property_readonly("granularity", &hal::Arena::granularity, "Allocation granularity in bytes.")
      .def_property_readonly("padding", &hal::Arena::padding, "Bytes added to every rounded request.")
      .def_property_readonly("base_alignment", &hal::Arena::base_alignment, "Alignment of block addresses.")
      .def_property_readonly("host_addressable", &hal::Arena::host_addressable,
                             "True if addresses are host pointers (the CPU device).")
      .def_property_readonly("caching", &hal::Arena::caching, "True if freed blocks are cached for reuse.")
      .def("rounded_size", &hal::Arena::rounded_size, py::arg("nbytes"),
           "Bytes of device memory a request of nbytes occupies: round_up(max(nbytes, 1), granularity) + "
           "padding. ValueError if nbytes < 0.")
      .def("allocate", &hal::Arena::allocate, py::arg("nbytes"),
           "Allocate nbytes; returns the block's device address. Reuses a cached block when one fits, "
           "else takes a new host allocation (not touched). Raises ArenaOutOfMemory when the capacity "
           "(after releasing the cache) or the host memory is exhausted; the arena stays usable.")
      .def("free", &hal::Arena::free, py::arg("address"),
           "Free a live block (to the cache if caching, else to the host). ValueError if address is "
           "not a live allocation of this arena (double free?). A block still in use by a running copy "
           "or a host view is recycled when that use ends.")
      .def("empty_cache", &hal::Arena::empty_cache, "Return every cached block to the host; returns the bytes released.")
      .def(
          "stats", [](const hal::Arena& a) { return stats_dict(a.stats()); },
          "Counters as a dict of ints: allocated_bytes, requested_bytes, reserved_bytes, cached_bytes, "
          "peak_allocated_bytes, peak_reserved_bytes, capacity_bytes, num_allocs, num_frees, "
          "active_allocs, cache_hits, cache_misses, num_ooms. reserved == allocated + cached.")
      .def("reset_peak_stats", &hal::Arena::reset_peak_stats, "Set the peak counters to the current values.")
      .def("size_of", &hal::Arena::size_of, py::arg("address"),
           "Requested size in bytes of a live block (ValueError if not live).")
      .def("block_size", &hal::Arena::block_size, py::arg("address"),
           "Occupied size in bytes of a live block under the allocation rule (ValueError if not live).")
      .def("is_live", &hal::Arena::is_live, py::arg("address"), "True if address is a live allocation.")
      .def(
          "copy_from_host",
          [](hal::Arena& a, uint64_t address, int64_t offset, py::handle src) {
            BufferArg buf(src, false, "copy_from_host", "src");
            run_copy(buf.nbytes(), [&] { a.copy_from_host(address, offset, buf.data(), buf.nbytes()); });
          },
          py::arg("address"), py::arg("offset"), py::arg("src"),
          "Copy all bytes of the C-contiguous buffer src into the block at address + offset. ValueError "
          "if the range exceeds the block's requested size or src is not C-contiguous.")
      .def(
          "copy_to_host",
          [](hal::Arena& a, uint64_t address, int64_t offset, py::handle dst) {
            BufferArg buf(dst, true, "copy_to_host", "dst");
            run_copy(buf.nbytes(), [&] { a.copy_to_host(address, offset, buf.data(), buf.nbytes()); });
          },
          py::arg("address"), py::arg("offset"), py::arg("dst"),
          "Copy len(dst) bytes from the block at address + offset into the writable C-contiguous buffer "
          "dst. ValueError on a bounds violation or a read-only / non-contiguous dst.")
      .def(
          "copy_within",
          [](hal::Arena& a, uint64_t dst_address, int64_t dst_offset, uint64_t src_address, int64_t src_offset,
             int64_t nbytes) {
            run_copy(nbytes, [&] { a.copy_within(dst_address, dst_offset, src_address, src_offset, nbytes); });
          },
          py::arg("dst_address"), py::arg("dst_offset"), py::arg("src_address"), py::arg("src_offset"),
          py::arg("nbytes"),
          "Copy nbytes between two live blocks of this arena (or within one); overlapping ranges are "
          "handled (memmove semantics).")
      .def(
          "host_pointer",
          [](const hal::Arena& a, uint64_t address) { return reinterpret_cast<uint64_t>(a.host_pointer(address)); },
          py::arg("address"),
          "Host pointer of a live block (equal to its address). ValueError unless the arena is "
          "host_addressable: simulated device memory is reachable only through the copy API.")
      .def(
          "host_buffer",
          [](py::object self, uint64_t address) { return block_view(std::move(self), address, false); },
          py::arg("address"),
          "Writable memoryview over the requested bytes of a live block of a host_addressable arena "
          "(ValueError otherwise). The view keeps the arena alive, and a block freed while a view of it "
          "exists is only recycled once the last view is gone.")
      .def(
          "emulation_buffer",
          [](py::object self, uint64_t address) { return block_view(std::move(self), address, true); },
          py::arg("address"),
          "host_buffer for a simulator's own kernels, on any arena: a simulated chip computes on this host, "
          "in its device memory, without a copy. Not for users, who reach device memory through copies.")
      .def("__repr__", &arena_repr);

  m.def(
      "copy_between",
      [](hal::Arena& dst_arena, uint64_t dst_address, int64_t dst_offset, hal::Arena& src_arena, uint64_t src_address,
         int64_t src_offset, int64_t nbytes) {
        run_copy(nbytes, [&] {
          hal::Arena::copy_between(dst_arena, dst_address, dst_offset, src_arena, src_address, src_offset, nbytes);
        });
      },
      py::arg("dst_arena"), py::arg("dst_address"), py::arg("dst_offset"), py::arg("src_arena"),
      py::arg("src_address"), py::arg("src_offset"), py::arg("nbytes"),
      "Copy nbytes from a live block of src_arena to a live block of dst_arena (device to device across "
      "arenas), bounds-checked on both sides; the GIL is released.");

  m.def(
      "memcpy_host",
      [](py::handle dst, py::handle src) {
        BufferArg d(dst, true, "memcpy_host", "dst");
        BufferArg s(src, false, "memcpy_host", "src");
        if (d.nbytes() != s.nbytes()) {
          throw py::value_error("memcpy_host: dst has " + std::to_string(d.nbytes()) + " bytes but src has " +
                                std::to_string(s.nbytes()));
        }
        run_copy(d.nbytes(), [&] { hal::host_memmove(d.data(), s.data(), static_cast<size_t>(d.nbytes())); });
      },
      py::arg("dst"), py::arg("src"),
      "Copy between two C-contiguous host buffers of equal byte length (dst writable), without the GIL.");

  // ---------------------------------------------------------------- DLPack
  m.def(
      "to_dlpack",
      [](py::object owner, uint64_t data_ptr, std::vector<int64_t> shape, std::optional<std::vector<int64_t>> strides,
         int64_t dtype_code, int64_t dtype_bits, int64_t device_type, int64_t device_id, bool versioned,
         bool read_only) {
        hal::dlpack::ExportSpec spec;
        spec.data_ptr = data_ptr;
        spec.shape = std::move(shape);
        spec.strides = std::move(strides);
        spec.dtype_code = dtype_code;
        spec.dtype_bits = dtype_bits;
        spec.device_type = device_type;
        spec.device_id = device_id;
        spec.versioned = versioned;
        spec.read_only = read_only;
        return hal::dlpack::make_capsule(owner, spec);
      },
      py::arg("owner"), py::arg("data_ptr"), py::arg("shape"), py::arg("strides"), py::arg("dtype_code"),
      py::arg("dtype_bits"), py::arg("device_type"), py::arg("device_id"), py::arg("versioned"),
      py::arg("read_only") = false,
      R"doc(Export memory as a DLPack capsule.

Returns a PyCapsule named "dltensor_versioned" (DLManagedTensorVersioned, DLPack 1.0)
when versioned, else "dltensor" (legacy DLManagedTensor). ``owner`` is kept alive until
the consumer calls the deleter (from any thread), or until the capsule is destroyed
unconsumed. ``strides`` are in elements; None means compact row-major (explicit strides
are filled in). dtype_lanes is 1. ValueError on a malformed argument; BufferError for
read_only=True with versioned=False (the legacy protocol cannot mark memory read-only).)doc");

  py::class_<hal::dlpack::DLPackImport>(m, "DLPackImport", py::buffer_protocol(), R"doc(
A tensor imported from a DLPack capsule (made by from_dlpack_capsule).

Owns the producer's managed tensor and calls its deleter once: on release() or
when this object dies. Supports the buffer protocol (1-D unsigned bytes, like
host_buffer()), so ``np.frombuffer(imp, dtype)`` keeps the import, and thus the
producer's memory, alive.
)doc")
      .def_buffer([](hal::dlpack::DLPackImport& imp) {
        py::object region = dlpack_host_region(imp);
        auto* view = new Py_buffer();
        if (PyObject_GetBuffer(region.ptr(), view, PyBUF_RECORDS_RO) != 0) {
          delete view;
          throw py::error_already_set();
        }
        return py::buffer_info(view, true);  // releases the region's view (and so the pin) when done
      })
      .def_property_readonly("data_ptr", &hal::dlpack::DLPackImport::data_ptr,
                             "Address of the first element (data + byte_offset).")
      .def_property_readonly(
          "shape", [](const hal::dlpack::DLPackImport& i) { return py::tuple(py::cast(i.shape())); },
          "Shape as a tuple of ints.")
      .def_property_readonly(
          "strides",
          [](const hal::dlpack::DLPackImport& i) -> py::object {
            if (!i.strides()) return py::none();
            return py::tuple(py::cast(*i.strides()));
          },
          "Strides in elements as a tuple, or None when the producer gave NULL (compact row-major).")
      .def_property_readonly("ndim", [](const hal::dlpack::DLPackImport& i) { return i.shape().size(); },
                             "Number of dimensions.")
      .def_property_readonly("dtype_code", &hal::dlpack::DLPackImport::dtype_code,
                             "DLDataTypeCode: 0 int, 1 uint, 2 float, 4 bfloat, 5 complex, 6 bool.")
      .def_property_readonly("dtype_bits", &hal::dlpack::DLPackImport::dtype_bits, "Bits per lane.")
      .def_property_readonly("dtype_lanes", &hal::dlpack::DLPackImport::dtype_lanes, "Lanes (1 for scalars).")
      .def_property_readonly("device_type", &hal::dlpack::DLPackImport::device_type,
                             "DLDeviceType: 1 kDLCPU, 2 kDLCUDA, ...")
      .def_property_readonly("device_id", &hal::dlpack::DLPackImport::device_id, "Device ordinal.")
      .def_property_readonly("read_only", &hal::dlpack::DLPackImport::read_only,
                             "True if the producer flagged the memory read-only (versioned capsules only).")
      .def_property_readonly("versioned", &hal::dlpack::DLPackImport::versioned,
                             "True if imported from a \"dltensor_versioned\" capsule.")
      .def_property_readonly("nbytes", &hal::dlpack::DLPackImport::nbytes,
                             "Logical size in bytes: prod(shape) * bits * lanes / 8, rounded up.")
      .def_property_readonly("released", &hal::dlpack::DLPackImport::released, "True once release() was called.")
      .def("is_c_contiguous", &hal::dlpack::DLPackImport::is_c_contiguous,
           "True if the tensor is compact row-major (NULL strides, or strides matching it; size-1 and "
           "empty dimensions are ignored).")
      .def(
          "host_buffer",
          [](hal::dlpack::DLPackImport& imp) { return memoryview_of(dlpack_host_region(imp)); },
          "memoryview (1-D bytes) over the tensor's host memory: nbytes from data_ptr for compact tensors, "
          "through the last element for strided ones with non-negative strides. Writable unless read_only. "
          "Keeps this import alive. ValueError unless device_type is kDLCPU (1), or after release().")
      .def("release", &hal::dlpack::DLPackImport::release,
           "Call the producer's deleter (once; idempotent). If host views are still alive, it runs when the "
           "last one is gone.");

  m.def(
      "from_dlpack_capsule",
      [](py::handle capsule) { return std::make_unique<hal::dlpack::DLPackImport>(capsule); },
      py::arg("capsule"),
      "Import a \"dltensor\" or \"dltensor_versioned\" capsule (e.g. from obj.__dlpack__()). The capsule "
      "is renamed \"used_dltensor[_versioned]\" and the returned DLPackImport owns the tensor. ValueError "
      "if it is not an unconsumed DLPack capsule or has an unsupported major version.");

  m.attr("DLPACK_VERSION") = py::make_tuple(1, 0);
  m.attr("kDLCPU") = 1;
  m.attr("kDLCUDA") = 2;
  // ---------------------------------------------------------------- kernels
  hal::python::bind_kernels(m);
  hal::python::bind_llm(m);
}
