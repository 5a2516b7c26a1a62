// The kernel registry: one kernel per (domain, op, backend, dtype), from hal._C itself or from
// shared libraries loaded at run time. Thread-safe; entries are never removed (a kernel's code
// stays loaded for the life of the process), so a looked-up Kernel pointer stays valid.
#pragma once

#include <cstdint>
#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "hal/kernel.h"

namespace hal::ops {

struct Kernel {
  std::string domain, op, backend, dtype;
  std::string origin;  // "hal._C" or the library's path
  std::string source;  // the file it is written in
  hal_kernel_fn infer;
  hal_kernel_fn compute;
};

// What went wrong, named after the hal.HalError subclass the binding raises.
class RegistryError : public std::runtime_error {
 public:
  enum class Kind { kNotFound, kDuplicate, kInvalid, kLibrary };
  RegistryError(Kind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  Kind kind() const { return kind_; }

 private:
  Kind kind_;
};

class Registry {
 public:
  static Registry& global();

  // Registers every (backend, dtype) pair of def, all or none: raises kDuplicate naming the
  // existing kernel's origin, kInvalid for an unknown dtype or an empty name.
  void add(const hal_kernel_def& def, const std::string& origin);
  void add_all(const std::vector<hal_kernel_def>& defs, const std::string& origin);

  // The kernel, or kNotFound with a message listing the backends and dtypes that do have one.
  const Kernel& find(const std::string& domain, const std::string& op, const std::string& backend,
                     const std::string& dtype) const;
  const Kernel* try_find(const std::string& domain, const std::string& op, const std::string& backend,
                         const std::string& dtype) const;
  std::vector<Kernel> list() const;

  // dlopens path and calls its hal_register_kernels; kLibrary when it cannot be loaded or has no
  // entry point, kDuplicate / kInvalid from its registrations (then nothing of it is registered).
  void load_library(const std::string& path);

 private:
  using Key = std::tuple<std::string, std::string, std::string, std::string>;
  std::vector<Kernel> expand(const hal_kernel_def& def, const std::string& origin) const;
  void check_free(const std::vector<Kernel>& kernels) const;

  mutable std::shared_mutex mutex_;
  std::map<Key, Kernel*> index_;
  std::vector<std::unique_ptr<Kernel>> kernels_;
  std::mutex load_mutex_;
};

// The kernels compiled into hal._C (csrc/kernels/*), registered once.
void register_builtin_kernels();

int32_t dtype_from_name(const std::string& name);  // -1 when unknown

// Threads a kernel may use (hal.ops.set_num_threads); at least 1.
int32_t num_threads();
void set_num_threads(int32_t n);

}  // namespace hal::ops
