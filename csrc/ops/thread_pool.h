// The kernels' worker threads. Waiting workers sleep on a condition variable instead of spinning
// (OpenMP's default): on a machine where other processes, or torch's own OpenMP pool, hold the
// cores, a spinning team member keeps its peer off the core for a whole scheduler slice (4-12 ms
// per call were measured with libgomp on a loaded 2-core host); a sleeping one costs only a
// wake-up (tens of microseconds), which kMinElementsPerThread keeps small against the work.
#pragma once

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

  // Runs task(i) for i in [0, count): i = 0 on the calling thread, the others on workers; returns
  // when all are done. While another call is using the workers, runs every task on the caller.
  void run(int32_t count, const std::function<void(int32_t)>& task);

 private:
  void work(int32_t index);

  std::mutex busy_;  // one parallel call at a time owns the workers
  std::mutex mutex_;
  std::condition_variable start_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(int32_t)>* task_ = nullptr;
  int32_t count_ = 0, pending_ = 0;
  uint64_t generation_ = 0;
};

}  // namespace hal::kernels
