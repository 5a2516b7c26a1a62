// Arena: the device memory of one simulated (or host) device.
//
// A caching allocator over host memory that applies a chip's allocation rule
// (round_up(max(n, 1), granularity) + padding) and enforces the device's
// capacity by accounting only: nothing is reserved up front, every block gets
// its own host allocation, and memory is never touched on allocate, so a
// 64 GiB simulated device works on a smaller host until real use exceeds it.
//
// Thread safety: every public method may be called concurrently. A single
// mutex guards the maps and counters; it is never held during a memcpy or
// while memory is returned to the host. Blocks taking part in a copy (or
// exposed through a host view) are pinned, so a concurrent free() cannot pull
// the memory out from under them: such a block "retires" and is cached or
// released when its last pin goes away.
//
// This header is pure C++ (no Python); hal/_C binds it in csrc/bindings.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

namespace hal {

// The arena could not satisfy an allocation: either the device capacity is
// exhausted or the host could not back the block. Bound as
// hal._C.ArenaOutOfMemory (a MemoryError subclass).
class ArenaOutOfMemory : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ArenaStats {
  uint64_t allocated_bytes = 0;       // block sizes of live allocations
  uint64_t requested_bytes = 0;       // bytes asked for by live allocations
  uint64_t reserved_bytes = 0;        // held from the host: live + cached
  uint64_t cached_bytes = 0;          // held but not allocated
  uint64_t peak_allocated_bytes = 0;
  uint64_t peak_reserved_bytes = 0;
  uint64_t capacity_bytes = 0;
  uint64_t num_allocs = 0;            // cumulative successful allocations
  uint64_t num_frees = 0;
  uint64_t active_allocs = 0;
  uint64_t cache_hits = 0;
  uint64_t cache_misses = 0;
  uint64_t num_ooms = 0;
};

// A pinned byte range of a live block: valid until released (RAII).
class Arena;
class PinnedRange {
 public:
  PinnedRange() = default;
  PinnedRange(Arena* arena, uint64_t address, char* ptr) : arena_(arena), address_(address), ptr_(ptr) {}
  PinnedRange(const PinnedRange&) = delete;
  PinnedRange& operator=(const PinnedRange&) = delete;
  PinnedRange(PinnedRange&& o) noexcept : arena_(o.arena_), address_(o.address_), ptr_(o.ptr_) { o.arena_ = nullptr; }
  PinnedRange& operator=(PinnedRange&& o) noexcept;
  ~PinnedRange() { reset(); }

  char* data() const { return ptr_; }
  void reset();

 private:
  Arena* arena_ = nullptr;
  uint64_t address_ = 0;
  char* ptr_ = nullptr;
};

class Arena {
 public:
  // Simulated device virtual addresses start here; user-space host pointers
  // on the supported 64-bit platforms lie below it, so the two never meet.
  static constexpr uint64_t kSimulatedBase = 0x1000000000000ULL;  // 2**48
  static constexpr int64_t kMaxBaseAlignment = int64_t{1} << 30;
  static constexpr int64_t kMaxCapacity = int64_t{1} << 60;

  // Throws std::invalid_argument on a bad configuration.
  Arena(int64_t capacity_bytes, int64_t granularity = 1, int64_t padding = 0, int64_t base_alignment = 64,
        bool host_addressable = false, bool caching = true);
  ~Arena();
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // --- configuration -------------------------------------------------------
  uint64_t capacity_bytes() const { return capacity_; }
  uint64_t granularity() const { return granularity_; }
  uint64_t padding() const { return padding_; }
  uint64_t base_alignment() const { return base_alignment_; }
  bool host_addressable() const { return host_addressable_; }
  bool caching() const { return caching_; }

  // Bytes of device memory a request of nbytes occupies.
  // std::invalid_argument if nbytes < 0, std::overflow_error if it does not fit 64 bits.
  uint64_t rounded_size(int64_t nbytes) const;

  // --- allocation ----------------------------------------------------------
  uint64_t allocate(int64_t nbytes);  // ArenaOutOfMemory, std::invalid_argument
  void free(uint64_t address);        // std::invalid_argument if not live
  uint64_t empty_cache();             // bytes returned to the host
  ArenaStats stats() const;
  void reset_peak_stats();
  uint64_t size_of(uint64_t address) const;     // requested bytes of a live block
  uint64_t block_size(uint64_t address) const;  // occupied bytes of a live block
  bool is_live(uint64_t address) const;

  // --- copies (bounds-checked against the block's requested size) ----------
  void copy_from_host(uint64_t address, int64_t offset, const void* src, int64_t nbytes);
  void copy_to_host(uint64_t address, int64_t offset, void* dst, int64_t nbytes);
  void copy_within(uint64_t dst_address, int64_t dst_offset, uint64_t src_address, int64_t src_offset,
                   int64_t nbytes);
  static void copy_between(Arena& dst, uint64_t dst_address, int64_t dst_offset, Arena& src,
                           uint64_t src_address, int64_t src_offset, int64_t nbytes);

  // --- host access (host_addressable arenas only) ---------------------------
  void* host_pointer(uint64_t address) const;
  // Pin a whole live block for a long-lived host view; returns its pointer and
  // requested size. Must be balanced by unpin(address).
  void* pin_block(uint64_t address, uint64_t* requested_size);
  // pin_block for a simulator's own kernels, whatever host_addressable says: a simulated chip's
  // kernels run on this host and read and write its memory in place, as the chip's cores would;
  // users still reach that memory only through the copy API.
  void* pin_block_for_emulation(uint64_t address, uint64_t* requested_size);
  void unpin(uint64_t address);

  // Look up [offset, offset + nbytes) of a live block, check it, pin the block.
  // `what` names the operation in error messages.
  PinnedRange pin_range(uint64_t address, int64_t offset, int64_t nbytes, const char* what);

 private:
  struct Block {
    void* host = nullptr;
    uint64_t requested = 0;
    uint64_t size = 0;
    uint32_t pins = 0;
  };
  struct CachedBlock {
    uint64_t address;
    void* host;
  };

  void* host_alloc(uint64_t size) const;
  uint64_t next_simulated_address(uint64_t size);  // lock held
  void drain_cache_locked(std::vector<void*>& out);  // lock held
  void retire_locked(uint64_t address, Block block, std::vector<void*>& out);  // lock held
  const Block& live_block_locked(uint64_t address, const char* what) const;  // lock held
  std::string oom_message_locked(int64_t nbytes, uint64_t rounded, bool host_failed) const;
  void note_alloc_locked(const Block& b);

  const uint64_t capacity_;
  const uint64_t granularity_;
  const uint64_t padding_;
  const uint64_t base_alignment_;
  const uint64_t host_alignment_;
  const bool host_addressable_;
  const bool caching_;

  mutable std::mutex mu_;
  std::unordered_map<uint64_t, Block> live_;
  std::unordered_map<uint64_t, Block> retiring_;  // freed while pinned
  std::multimap<uint64_t, CachedBlock> cache_;   // keyed by block size
  uint64_t next_address_ = kSimulatedBase;
  ArenaStats st_;
};

// GIL-free memmove between two host ranges (used by memcpy_host).
void host_memmove(void* dst, const void* src, size_t nbytes);

}  // namespace hal
