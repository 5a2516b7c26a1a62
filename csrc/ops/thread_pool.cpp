#include "ops/thread_pool.h"

namespace hal::kernels {

ThreadPool& ThreadPool::global() {
  static ThreadPool* pool = new ThreadPool();  // never destroyed: workers may outlive static teardown
  return *pool;
}

void ThreadPool::run(int32_t count, const std::function<void(int32_t)>& task) {
  std::unique_lock owner(busy_, std::try_to_lock);
  if (!owner.owns_lock() || count <= 1) {
    for (int32_t i = 0; i < count; ++i) task(i);
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
    pending_ = count - 1;
    ++generation_;
  }
  start_.notify_all();
  task(0);
  std::unique_lock lock(mutex_);
  done_.wait(lock, [this] { return pending_ == 0; });
  task_ = nullptr;
}

void ThreadPool::work(int32_t index) {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int32_t)>* task;
    {
      std::unique_lock lock(mutex_);
      start_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      if (index >= count_) continue;
      task = task_;
    }
    (*task)(index);
    std::lock_guard lock(mutex_);
    if (--pending_ == 0) done_.notify_one();
  }
}

}  // namespace hal::kernels
