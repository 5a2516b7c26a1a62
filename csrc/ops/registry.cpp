#include "ops/registry.h"

#include <dlfcn.h>

#include <cstdio>
#include <memory>
#include <set>
#include <sstream>

namespace hal::ops {
namespace {

std::vector<std::string> split_list(const char* text) {
  std::vector<std::string> items;
  if (text == nullptr) return items;
  std::string current;
  for (const char* p = text;; ++p) {
    if (*p == ',' || *p == '\0') {
      size_t b = current.find_first_not_of(" \t"), e = current.find_last_not_of(" \t");
      if (b != std::string::npos) items.push_back(current.substr(b, e - b + 1));
      current.clear();
      if (*p == '\0') break;
    } else {
      current.push_back(*p);
    }
  }
  return items;
}

std::string qualified(const std::string& domain, const std::string& op) { return domain + "::" + op; }

// What load_library's registrar collects before committing a library's kernels at once.
struct PendingLibrary {
  std::vector<hal_kernel_def> defs;
  std::vector<std::unique_ptr<std::string>> strings;  // defs point into these
  std::string error;
  int32_t status = HAL_OK;
};

const char* keep(PendingLibrary& pending, const char* text) {
  pending.strings.push_back(std::make_unique<std::string>(text == nullptr ? "" : text));
  return pending.strings.back()->c_str();
}

int32_t stage_kernel(void* context, const hal_kernel_def* def, char* message, size_t message_size) {
  auto& pending = *static_cast<PendingLibrary*>(context);
  auto fail = [&](int32_t status, const std::string& why) {
    if (pending.status == HAL_OK) {
      pending.status = status;
      pending.error = why;
    }
    if (message != nullptr && message_size > 0) std::snprintf(message, message_size, "%s", why.c_str());
    return status;
  };
  if (def == nullptr) return fail(HAL_ERR_INVALID_ARGUMENT, "register_kernel got a null hal_kernel_def");
  if (def->abi_version != HAL_KERNEL_ABI_VERSION) {
    return fail(HAL_ERR_INVALID_ARGUMENT, "kernel " + std::string(def->op ? def->op : "?") + " was built against hal kernel ABI " +
                                              std::to_string(def->abi_version) + ", this hal speaks " +
                                              std::to_string(HAL_KERNEL_ABI_VERSION) + "; rebuild it against hal.ops.include_dir()");
  }
  hal_kernel_def copy = *def;
  copy.domain = keep(pending, def->domain);
  copy.op = keep(pending, def->op);
  copy.backends = keep(pending, def->backends);
  copy.dtypes = keep(pending, def->dtypes);
  copy.source = keep(pending, def->source);
  pending.defs.push_back(copy);
  return HAL_OK;
}

}  // namespace

int32_t dtype_from_name(const std::string& name) {
  for (int32_t code = 0; code < HAL_NUM_DTYPES; ++code) {
    if (name == hal_dtype_name(code)) return code;
  }
  return -1;
}

namespace {
std::atomic<int32_t> thread_setting{1};
}  // namespace

int32_t num_threads() { return thread_setting.load(std::memory_order_relaxed); }
void set_num_threads(int32_t n) { thread_setting.store(n < 1 ? 1 : n, std::memory_order_relaxed); }

Registry& Registry::global() {
  static Registry* registry = new Registry();  // never destroyed: kernels may run during exit
  return *registry;
}

std::vector<Kernel> Registry::expand(const hal_kernel_def& def, const std::string& origin) const {
  std::string domain = def.domain ? def.domain : "", op = def.op ? def.op : "";
  std::string where = qualified(domain, op) + " (" + (def.source ? def.source : origin) + ")";
  if (domain.empty() || op.empty()) throw RegistryError(RegistryError::Kind::kInvalid, "a kernel needs a domain and an op name: " + where);
  if (def.infer == nullptr || def.compute == nullptr) {
    throw RegistryError(RegistryError::Kind::kInvalid, "kernel " + where + " needs both an infer and a compute function");
  }
  auto backends = split_list(def.backends), dtypes = split_list(def.dtypes);
  if (backends.empty() || dtypes.empty()) {
    throw RegistryError(RegistryError::Kind::kInvalid, "kernel " + where + " names no backend or no dtype");
  }
  std::vector<Kernel> out;
  for (const auto& dtype : dtypes) {
    if (dtype_from_name(dtype) < 0) {
      throw RegistryError(RegistryError::Kind::kInvalid,
                          "kernel " + where + " names unknown dtype '" + dtype +
                              "'; use bool, int8, uint8, int16, uint16, int32, uint32, int64, uint64, float16, bfloat16, float32 or float64");
    }
    for (const auto& backend : backends) {
      out.push_back(Kernel{domain, op, backend, dtype, origin, def.source ? def.source : "", def.infer, def.compute});
    }
  }
  return out;
}

void Registry::check_free(const std::vector<Kernel>& kernels) const {
  std::set<Key> seen;
  for (const auto& k : kernels) {
    Key key{k.domain, k.op, k.backend, k.dtype};
    auto found = index_.find(key);
    if (found != index_.end() || !seen.insert(key).second) {
      std::string other = found != index_.end() ? found->second->origin + " (" + found->second->source + ")" : "the same library";
      throw RegistryError(RegistryError::Kind::kDuplicate,
                          "kernel " + qualified(k.domain, k.op) + " for " + k.backend + "/" + k.dtype + " from " + k.origin +
                              " is already registered by " + other +
                              "; a (domain, op, backend, dtype) has one kernel: rename the op or drop one registration");
    }
  }
}

void Registry::add(const hal_kernel_def& def, const std::string& origin) { add_all({def}, origin); }

void Registry::add_all(const std::vector<hal_kernel_def>& defs, const std::string& origin) {
  std::vector<Kernel> kernels;
  for (const auto& def : defs) {
    auto more = expand(def, origin);
    kernels.insert(kernels.end(), more.begin(), more.end());
  }
  std::unique_lock lock(mutex_);
  check_free(kernels);
  for (auto& k : kernels) {
    kernels_.push_back(std::make_unique<Kernel>(std::move(k)));
    Kernel* p = kernels_.back().get();
    index_[Key{p->domain, p->op, p->backend, p->dtype}] = p;
  }
}

const Kernel* Registry::try_find(const std::string& domain, const std::string& op, const std::string& backend,
                                 const std::string& dtype) const {
  std::shared_lock lock(mutex_);
  auto found = index_.find(Key{domain, op, backend, dtype});
  return found == index_.end() ? nullptr : found->second;
}

const Kernel& Registry::find(const std::string& domain, const std::string& op, const std::string& backend,
                             const std::string& dtype) const {
  if (const Kernel* k = try_find(domain, op, backend, dtype)) return *k;
  std::shared_lock lock(mutex_);
  std::map<std::string, std::vector<std::string>> by_backend;
  for (const auto& [key, kernel] : index_) {
    if (kernel->domain == domain && kernel->op == op) by_backend[kernel->backend].push_back(kernel->dtype);
  }
  std::ostringstream msg;
  msg << "no kernel " << qualified(domain, op) << " for " << backend << "/" << dtype;
  if (by_backend.empty()) {
    msg << "; no backend has a kernel of that name (see hal.ops.registry(), or load the library that defines it with "
           "hal.ops.load_library)";
  } else {
    msg << "; registered for ";
    bool first = true;
    for (const auto& [b, dtypes] : by_backend) {
      msg << (first ? "" : ", ") << b << " (";
      for (size_t i = 0; i < dtypes.size(); ++i) msg << (i ? ", " : "") << dtypes[i];
      msg << ")";
      first = false;
    }
  }
  throw RegistryError(RegistryError::Kind::kNotFound, msg.str());
}

std::vector<Kernel> Registry::list() const {
  std::shared_lock lock(mutex_);
  std::vector<Kernel> out;
  for (const auto& [key, kernel] : index_) out.push_back(*kernel);
  return out;
}

void Registry::load_library(const std::string& path) {
  std::lock_guard serial(load_mutex_);  // one library at a time: its registrations are all or none
  // RTLD_LOCAL: the library's symbols (its copy of this header's helpers) stay its own.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* why = dlerror();
    throw RegistryError(RegistryError::Kind::kLibrary,
                        "cannot load kernel library " + path + ": " + (why ? why : "unknown dlopen error"));
  }
  using Entry = int32_t (*)(const hal_registrar*);
  auto entry = reinterpret_cast<Entry>(dlsym(handle, "hal_register_kernels"));
  if (entry == nullptr) {
    dlclose(handle);
    throw RegistryError(RegistryError::Kind::kLibrary,
                        "kernel library " + path +
                            " has no hal_register_kernels entry point; include <hal/kernel.h> and register kernels with "
                            "HAL_REGISTER_KERNEL");
  }
  PendingLibrary pending;
  hal_registrar registrar{HAL_KERNEL_ABI_VERSION, &pending, &stage_kernel};
  int32_t status = entry(&registrar);
  if (status != HAL_OK || pending.status != HAL_OK) {
    dlclose(handle);
    throw RegistryError(RegistryError::Kind::kLibrary,
                        "kernel library " + path + " failed to register its kernels: " +
                            (pending.error.empty() ? "hal_register_kernels returned " + std::to_string(status) : pending.error));
  }
  try {
    add_all(pending.defs, path);
  } catch (...) {
    dlclose(handle);
    throw;
  }
  // The strings the kernels were registered with are copied into Kernel; the library stays open
  // for the life of the process because its functions are now in the registry.
}

}  // namespace hal::ops
