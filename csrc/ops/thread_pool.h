// The kernels' worker threads. A worker that finishes spins for a short, bounded while (kSpin)
// (200 us, thread_pool.cpp says why) before it sleeps on a condition variable, and so does a caller
// waiting for its workers:
//  - sleeping, not spinning indefinitely (OpenMP's default), because on a machine where other
//    processes, or torch's own OpenMP pool, hold the cores, a spinning team member keeps its peer
//    off the core for a whole scheduler slice (4-12 ms per call were measured with libgomp on a
//    loaded 2-core host);
//  - but spinning briefly first, because waking a sleeping thread costs a futex call plus, on a
//    virtual machine whose idle vCPU has halted, a hypervisor wake-up: back-to-back kernel calls
//    (a model's layers) ran 2 threads at half speed, 0.65 ms instead of 0.33 ms for a 4 MiB GELU,
//    when every call woke a sleeping worker.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace hal::kernels {

class ThreadPool {
 public:
  static ThreadPool& global();

  // Runs task(0) on the calling thread and task(i), i in [1, count), on each worker that starts
  // before task(0) has returned; returns when every started task is done. A worker whose core is
  // busy elsewhere (torch's or BLAS's spinning threads, another process) is not waited for, so
  // tasks must share their work dynamically: parallel_for hands out chunks through an atomic
  // counter, and the caller's task returns only when no chunk is left. While another call is
  // using the workers, the caller runs task(0) alone.
  void run(int32_t count, const std::function<void(int32_t)>& task);

 private:
  void work(int32_t index);

  std::mutex busy_;  // one parallel call at a time owns the workers
  std::mutex mutex_;
  std::condition_variable start_, done_;
  std::vector<std::thread> workers_;
  // Written by run() under mutex_ with generation_, read by workers under mutex_.
  const std::function<void(int32_t)>* task_ = nullptr;
  int32_t count_ = 0;
  bool closed_ = false;  // under mutex_: the caller's task(0) returned, late workers skip this call
  std::atomic<int32_t> active_{0};  // workers running a task of this call (joined under mutex_)
  std::atomic<uint64_t> generation_{0};
};

}  // namespace hal::kernels
