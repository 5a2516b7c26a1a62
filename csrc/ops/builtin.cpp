// hal._C's own kernels: every HAL_REGISTER_KERNEL in csrc/kernels/ adds to this library's list,
// and hal._C hands that list to the registry the same way load_library does for a user's.
#include "ops/registry.h"

namespace hal::ops {

void register_builtin_kernels() {
  std::vector<hal_kernel_def> defs;
  for (hal_kernel_detail::Node* node = hal_kernel_detail::head(); node != nullptr; node = node->next) defs.push_back(node->def);
  Registry::global().add_all(defs, "hal._C");
}

}  // namespace hal::ops
