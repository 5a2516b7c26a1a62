#include "memory/arena.h"
#include "memory/bulk_copy.h"

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace hal {
namespace {

std::string hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "0x%" PRIx64, v);
  return buf;
}

bool is_pow2(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

void release_all(const std::vector<void*>& ptrs) {
  for (void* p : ptrs) std::free(p);
}

}  // namespace

// ---------------------------------------------------------------------------
// PinnedRange

PinnedRange& PinnedRange::operator=(PinnedRange&& o) noexcept {
  if (this != &o) {
    reset();
    arena_ = o.arena_;
    address_ = o.address_;
    ptr_ = o.ptr_;
    o.arena_ = nullptr;
  }
  return *this;
}

void PinnedRange::reset() {
  if (arena_ != nullptr) {
    arena_->unpin(address_);
    arena_ = nullptr;
  }
}

// ---------------------------------------------------------------------------
// construction

static uint64_t checked_config(int64_t value, int64_t lo, int64_t hi, const char* name, const char* rule) {
  if (value < lo || value > hi) {
    throw std::invalid_argument(std::string("Arena: ") + name + " must be " + rule + ", got " +
                                std::to_string(value));
  }
  return static_cast<uint64_t>(value);
}

Arena::Arena(int64_t capacity_bytes, int64_t granularity, int64_t padding, int64_t base_alignment,
             bool host_addressable, bool caching)
    : capacity_(checked_config(capacity_bytes, 1, kMaxCapacity, "capacity_bytes",
                               "positive and at most 2**60")),
      granularity_(checked_config(granularity, 1, capacity_bytes, "granularity",
                                  "at least 1 and at most capacity_bytes")),
      padding_(checked_config(padding, 0, capacity_bytes - 1, "padding", "at least 0 and below capacity_bytes")),
      base_alignment_(checked_config(base_alignment, 8, kMaxBaseAlignment, "base_alignment",
                                     "a power of two between 8 and 2**30")),
      host_alignment_(std::max<uint64_t>(64, static_cast<uint64_t>(base_alignment))),
      host_addressable_(host_addressable),
      caching_(caching) {
  if (!is_pow2(base_alignment_)) {
    throw std::invalid_argument("Arena: base_alignment must be a power of two between 8 and 2**30, got " +
                                std::to_string(base_alignment));
  }
  st_.capacity_bytes = capacity_;
  live_.reserve(256);
}

Arena::~Arena() {
  // Python keeps the arena alive while any copy or host view uses it, so no
  // pins can be outstanding here.
  for (auto& kv : live_) std::free(kv.second.host);
  for (auto& kv : retiring_) std::free(kv.second.host);
  for (auto& kv : cache_) std::free(kv.second.host);
}

// ---------------------------------------------------------------------------
// allocation rule

uint64_t Arena::rounded_size(int64_t nbytes) const {
  if (nbytes < 0) throw std::invalid_argument("nbytes must be >= 0, got " + std::to_string(nbytes));
  uint64_t n = std::max<uint64_t>(static_cast<uint64_t>(nbytes), 1);
  uint64_t up = 0;
  if (__builtin_add_overflow(n, granularity_ - 1, &up) ||
      __builtin_add_overflow((up / granularity_) * granularity_, padding_, &up)) {
    throw std::overflow_error("nbytes " + std::to_string(nbytes) + " overflows the allocation rule");
  }
  return up;
}

void* Arena::host_alloc(uint64_t size) const {
  void* p = nullptr;
  // posix_memalign never touches the memory; glibc mmaps large blocks lazily.
  if (posix_memalign(&p, host_alignment_, static_cast<size_t>(size)) != 0) return nullptr;
  return p;
}

uint64_t Arena::next_simulated_address(uint64_t size) {
  const uint64_t mask = base_alignment_ - 1;
  uint64_t addr = 0;
  uint64_t end = 0;
  if (__builtin_add_overflow(next_address_, mask, &addr)) {
    throw ArenaOutOfMemory("Arena: simulated device address space exhausted");
  }
  addr &= ~mask;
  if (__builtin_add_overflow(addr, size, &end)) {
    throw ArenaOutOfMemory("Arena: simulated device address space exhausted");
  }
  next_address_ = end;
  return addr;
}

void Arena::drain_cache_locked(std::vector<void*>& out) {
  for (auto& kv : cache_) {
    out.push_back(kv.second.host);
    st_.cached_bytes -= kv.first;
    st_.reserved_bytes -= kv.first;
  }
  cache_.clear();
}

std::string Arena::oom_message_locked(int64_t nbytes, uint64_t rounded, bool host_failed) const {
  const uint64_t free_bytes = st_.reserved_bytes >= capacity_ ? 0 : capacity_ - st_.reserved_bytes;
  std::string msg = host_failed ? "the host ran out of memory backing the device: " : "";
  msg += "requested " + std::to_string(nbytes) + " bytes (" +
         (rounded == UINT64_MAX ? std::string("overflows the allocation rule")
                                : "occupies " + std::to_string(rounded) + " with the allocation rule") +
         "); " + std::to_string(free_bytes) + " bytes free of " +
         std::to_string(capacity_) + " capacity; " + std::to_string(st_.cached_bytes) + " held in cache; " +
         std::to_string(st_.allocated_bytes) + " allocated in " + std::to_string(st_.active_allocs) +
         " live blocks";
  return msg;
}

void Arena::note_alloc_locked(const Block& b) {
  st_.allocated_bytes += b.size;
  st_.requested_bytes += b.requested;
  st_.num_allocs += 1;
  st_.active_allocs += 1;
  st_.peak_allocated_bytes = std::max(st_.peak_allocated_bytes, st_.allocated_bytes);
}

uint64_t Arena::allocate(int64_t nbytes) {
  if (nbytes < 0) throw std::invalid_argument("allocate: nbytes must be >= 0, got " + std::to_string(nbytes));
  uint64_t rounded = 0;
  bool fits_rule = true;
  try {
    rounded = rounded_size(nbytes);
  } catch (const std::overflow_error&) {
    fits_rule = false;
  }
  std::vector<void*> to_release;
  std::string oom;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!fits_rule || rounded > capacity_) {
      st_.num_ooms += 1;
      throw ArenaOutOfMemory(oom_message_locked(nbytes, fits_rule ? rounded : UINT64_MAX, false));
    }
    // Best fit among cached blocks no more than 25% larger than needed.
    auto it = cache_.lower_bound(rounded);
    if (it != cache_.end() && it->first <= rounded + rounded / 4) {
      const uint64_t size = it->first;
      const CachedBlock cb = it->second;
      const Block b{cb.host, static_cast<uint64_t>(nbytes), size, 0};
      live_.emplace(cb.address, b);  // may throw bad_alloc: nothing changed yet
      cache_.erase(it);
      st_.cached_bytes -= size;
      st_.cache_hits += 1;
      note_alloc_locked(b);
      return cb.address;
    }
    st_.cache_misses += 1;
    if (st_.reserved_bytes + rounded > capacity_) drain_cache_locked(to_release);
    if (st_.reserved_bytes + rounded > capacity_) {
      st_.num_ooms += 1;
      oom = oom_message_locked(nbytes, rounded, false);
    } else {
      // Reserve the capacity now so concurrent allocations see it.
      st_.reserved_bytes += rounded;
      st_.peak_reserved_bytes = std::max(st_.peak_reserved_bytes, st_.reserved_bytes);
    }
  }
  release_all(to_release);  // outside the lock: munmap of big blocks is slow
  to_release.clear();
  if (!oom.empty()) throw ArenaOutOfMemory(oom);

  void* host = host_alloc(rounded);
  if (host == nullptr) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      drain_cache_locked(to_release);
    }
    release_all(to_release);
    to_release.clear();
    host = host_alloc(rounded);
    if (host == nullptr) {
      std::lock_guard<std::mutex> lock(mu_);
      st_.reserved_bytes -= rounded;
      st_.num_ooms += 1;
      throw ArenaOutOfMemory(oom_message_locked(nbytes, rounded, true));
    }
  }

  std::lock_guard<std::mutex> lock(mu_);
  try {
    const uint64_t address = host_addressable_ ? reinterpret_cast<uint64_t>(host) : next_simulated_address(rounded);
    Block b{host, static_cast<uint64_t>(nbytes), rounded, 0};
    live_.emplace(address, b);
    note_alloc_locked(b);
    return address;
  } catch (...) {
    st_.reserved_bytes -= rounded;
    std::free(host);
    throw;
  }
}

void Arena::retire_locked(uint64_t address, Block block, std::vector<void*>& out) {
  // The block is no longer allocated; it is still held from the host.
  if (caching_) {
    cache_.emplace(block.size, CachedBlock{address, block.host});
  } else {
    st_.cached_bytes -= block.size;
    st_.reserved_bytes -= block.size;
    out.push_back(block.host);
  }
}

void Arena::free(uint64_t address) {
  void* release = nullptr;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(address);
    if (it == live_.end()) {
      throw std::invalid_argument("free: address " + hex(address) +
                                  " is not a live allocation of this arena (double free?)");
    }
    Block b = it->second;
    if (b.pins > 0) {
      // A copy or host view still uses the block: it retires when unpinned.
      retiring_.emplace(address, b);  // may throw bad_alloc before anything changed
    } else if (caching_) {
      cache_.emplace(b.size, CachedBlock{address, b.host});
    }
    live_.erase(it);
    st_.allocated_bytes -= b.size;
    st_.requested_bytes -= b.requested;
    st_.num_frees += 1;
    st_.active_allocs -= 1;
    if (b.pins > 0 || caching_) {
      st_.cached_bytes += b.size;
    } else {
      st_.reserved_bytes -= b.size;
      release = b.host;
    }
  }
  if (release != nullptr) std::free(release);
}

uint64_t Arena::empty_cache() {
  std::vector<void*> to_release;
  uint64_t released = 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const uint64_t before = st_.reserved_bytes;
    drain_cache_locked(to_release);
    released = before - st_.reserved_bytes;
  }
  release_all(to_release);
  return released;
}

ArenaStats Arena::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return st_;
}

void Arena::reset_peak_stats() {
  std::lock_guard<std::mutex> lock(mu_);
  st_.peak_allocated_bytes = st_.allocated_bytes;
  st_.peak_reserved_bytes = st_.reserved_bytes;
}

const Arena::Block& Arena::live_block_locked(uint64_t address, const char* what) const {
  auto it = live_.find(address);
  if (it == live_.end()) {
    throw std::invalid_argument(std::string(what) + ": address " + hex(address) +
                                " is not a live allocation of this arena");
  }
  return it->second;
}

uint64_t Arena::size_of(uint64_t address) const {
  std::lock_guard<std::mutex> lock(mu_);
  return live_block_locked(address, "size_of").requested;
}

uint64_t Arena::block_size(uint64_t address) const {
  std::lock_guard<std::mutex> lock(mu_);
  return live_block_locked(address, "block_size").size;
}

bool Arena::is_live(uint64_t address) const {
  std::lock_guard<std::mutex> lock(mu_);
  return live_.find(address) != live_.end();
}

// ---------------------------------------------------------------------------
// pinning

PinnedRange Arena::pin_range(uint64_t address, int64_t offset, int64_t nbytes, const char* what) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(address);
  if (it == live_.end()) {
    throw std::invalid_argument(std::string(what) + ": address " + hex(address) +
                                " is not a live allocation of this arena");
  }
  Block& b = it->second;
  if (offset < 0 || nbytes < 0 || static_cast<uint64_t>(offset) > b.requested ||
      static_cast<uint64_t>(nbytes) > b.requested - static_cast<uint64_t>(offset)) {
    throw std::invalid_argument(std::string(what) + ": offset " + std::to_string(offset) + " + length " +
                                std::to_string(nbytes) + " is out of bounds of the block at address " +
                                hex(address) + " of size " + std::to_string(b.requested));
  }
  b.pins += 1;
  return PinnedRange(this, address, static_cast<char*>(b.host) + offset);
}

void* Arena::pin_block(uint64_t address, uint64_t* requested_size) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!host_addressable_) {
      throw std::invalid_argument("host_buffer: this arena's memory is not host-addressable; use the copy API");
    }
  }
  return pin_block_for_emulation(address, requested_size);
}

void* Arena::pin_block_for_emulation(uint64_t address, uint64_t* requested_size) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = live_.find(address);
  if (it == live_.end()) {
    throw std::invalid_argument("host_buffer: address " + hex(address) + " is not a live allocation of this arena");
  }
  it->second.pins += 1;
  if (requested_size != nullptr) *requested_size = it->second.requested;
  return it->second.host;
}

void Arena::unpin(uint64_t address) {
  std::vector<void*> to_release;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(address);
    if (it != live_.end()) {
      it->second.pins -= 1;
      return;
    }
    auto rt = retiring_.find(address);
    if (rt == retiring_.end()) return;  // unreachable: pinned blocks are live or retiring
    rt->second.pins -= 1;
    if (rt->second.pins == 0) {
      Block b = rt->second;
      retiring_.erase(rt);
      try {
        retire_locked(address, b, to_release);
      } catch (...) {
        // Could not record it in the cache (bad_alloc): give it back instead.
        st_.cached_bytes -= b.size;
        st_.reserved_bytes -= b.size;
        to_release.push_back(b.host);
      }
    }
  }
  release_all(to_release);
}

// ---------------------------------------------------------------------------
// copies

void host_memmove(void* dst, const void* src, size_t nbytes) { bulk_copy(dst, src, nbytes); }

void Arena::copy_from_host(uint64_t address, int64_t offset, const void* src, int64_t nbytes) {
  PinnedRange dst = pin_range(address, offset, nbytes, "copy_from_host");
  host_memmove(dst.data(), src, static_cast<size_t>(nbytes));
}

void Arena::copy_to_host(uint64_t address, int64_t offset, void* dst, int64_t nbytes) {
  PinnedRange src = pin_range(address, offset, nbytes, "copy_to_host");
  host_memmove(dst, src.data(), static_cast<size_t>(nbytes));
}

void Arena::copy_within(uint64_t dst_address, int64_t dst_offset, uint64_t src_address, int64_t src_offset,
                        int64_t nbytes) {
  copy_between(*this, dst_address, dst_offset, *this, src_address, src_offset, nbytes);
}

void Arena::copy_between(Arena& dst, uint64_t dst_address, int64_t dst_offset, Arena& src, uint64_t src_address,
                         int64_t src_offset, int64_t nbytes) {
  PinnedRange d = dst.pin_range(dst_address, dst_offset, nbytes, "copy destination");
  PinnedRange s = src.pin_range(src_address, src_offset, nbytes, "copy source");
  host_memmove(d.data(), s.data(), static_cast<size_t>(nbytes));
}

void* Arena::host_pointer(uint64_t address) const {
  std::lock_guard<std::mutex> lock(mu_);
  if (!host_addressable_) {
    throw std::invalid_argument("host_pointer: this arena's memory is not host-addressable; use the copy API");
  }
  return live_block_locked(address, "host_pointer").host;
}

}  // namespace hal
