#include "ops/thread_pool.h"

#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HAL_CPU_RELAX() _mm_pause()
#else
#define HAL_CPU_RELAX() std::this_thread::yield()
#endif

namespace hal::kernels {
namespace {

// How long a finished worker, or a caller waiting for its workers, polls before it sleeps: about
// the gap between two parallel kernel calls of a model run from Python, far below a scheduler
// slice, so a loaded machine loses at most this much per call. An LLM decode step sets it: between
// two layers' weight sweeps (hal.ops.linear) come the attention and a few small kernels run on
// one thread, 40-100 us of them; at 50 us the worker slept and woke late for the next sweep, which
// the caller then read mostly alone (a 125M model's matmuls took 18-21 ms a token inside the step
// against 12-17 ms back to back; at 200 us, 15.9-16.6 against 14.2-15.4).
constexpr auto kSpin = std::chrono::microseconds(200);

// Polls `ready` until it holds or kSpin has passed; true if it holds.
template <class Ready>
bool spin_until(const Ready& ready) {
  auto deadline = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (ready()) return true;
      HAL_CPU_RELAX();
    }
    if (std::chrono::steady_clock::now() >= deadline) return ready();
  }
}

}  // namespace

ThreadPool& ThreadPool::global() {
  static ThreadPool* pool = new ThreadPool();  // never destroyed: workers may outlive static teardown
  return *pool;
}

void ThreadPool::run(int32_t count, const std::function<void(int32_t)>& task) {
  std::unique_lock owner(busy_, std::try_to_lock);
  if (!owner.owns_lock() || count <= 1) {
    task(0);
    return;
  }
  {
    std::lock_guard lock(mutex_);
    while (static_cast<int32_t>(workers_.size()) < count - 1) {
      int32_t index = static_cast<int32_t>(workers_.size()) + 1;
      workers_.emplace_back([this, index] { work(index); });
      workers_.back().detach();
    }
    task_ = &task;
    count_ = count;
    closed_ = false;
    generation_.fetch_add(1, std::memory_order_release);
  }
  start_.notify_all();
  task(0);
  {
    std::lock_guard lock(mutex_);
    closed_ = true;  // from here on a worker that wakes up finds nothing to join
  }
  auto finished = [this] { return active_.load(std::memory_order_acquire) == 0; };
  if (!spin_until(finished)) {
    std::unique_lock lock(mutex_);
    done_.wait(lock, finished);
  }
}

void ThreadPool::work(int32_t index) {
  uint64_t seen = 0;
  for (;;) {
    auto started = [&] { return generation_.load(std::memory_order_acquire) != seen; };
    const std::function<void(int32_t)>* task;
    {
      if (!spin_until(started)) {
        std::unique_lock lock(mutex_);
        start_.wait(lock, started);
      }
      // run() writes generation, count, task and closed under the mutex: read them, and join the
      // call, under it too, so a worker can never join a call whose caller has returned.
      std::lock_guard lock(mutex_);
      seen = generation_.load(std::memory_order_relaxed);
      if (index >= count_ || closed_) continue;
      active_.fetch_add(1, std::memory_order_relaxed);
      task = task_;
    }
    (*task)(index);
    if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      // Under the mutex, so that a caller between its last check and its wait cannot miss this.
      std::lock_guard lock(mutex_);
      done_.notify_one();
    }
  }
}

}  // namespace hal::kernels
