#include "threads.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__)
#include <immintrin.h>
static inline void cpu_relax() { _mm_pause(); }
#else
static inline void cpu_relax() { std::this_thread::yield(); }
#endif

namespace dwr {
namespace {

class Pool {
 public:
  ~Pool() { stop_workers(); }

  void resize(int n) {
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    n = std::max(1, std::min(n, 256));
    if (n == nthreads_) return;
    stop_workers();
    nthreads_ = n;
    stop_ = false;
    // Workers start from the current generation, so a job posted before a new thread gets
    // scheduled is still seen as new by it.
    const unsigned long long start = gen_.load(std::memory_order_acquire);
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, start] { worker_loop(start); });
  }

  int size() const { return nthreads_; }

  void run(int n_tasks, const std::function<void(int)>& fn) {
    if (n_tasks <= 0) return;
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    if (workers_.empty() || n_tasks == 1) {
      for (int t = 0; t < n_tasks; ++t) fn(t);
      return;
    }
    fn_ = &fn;
    n_tasks_ = n_tasks;
    next_.store(0, std::memory_order_relaxed);
    busy_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lk(m_);
      gen_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    work();
    // Wait for the workers; yield after a short spin so that on a busy (oversubscribed)
    // machine a descheduled worker gets the core back instead of us burning it.
    for (int spins = 0; busy_.load(std::memory_order_acquire) != 0; ++spins) {
      if (spins < 2000)
        cpu_relax();
      else
        std::this_thread::yield();
    }
    fn_ = nullptr;
  }

 private:
  void work() {
    for (;;) {
      int t = next_.fetch_add(1, std::memory_order_relaxed);
      if (t >= n_tasks_) break;
      (*fn_)(t);
    }
  }

  void worker_loop(unsigned long long seen) {
    for (;;) {
      int spins = 0;
      while (gen_.load(std::memory_order_acquire) == seen) {
        if (++spins < 4000) {
          cpu_relax();
        } else {
          std::unique_lock<std::mutex> lk(m_);
          cv_.wait(lk, [&] { return gen_.load(std::memory_order_acquire) != seen; });
        }
      }
      seen = gen_.load(std::memory_order_acquire);
      if (stop_) return;
      work();
      busy_.fetch_sub(1, std::memory_order_release);
    }
  }

  void stop_workers() {
    if (workers_.empty()) return;
    {
      std::lock_guard<std::mutex> lk(m_);
      stop_ = true;
      gen_.fetch_add(1, std::memory_order_release);
    }
    cv_.notify_all();
    for (auto& w : workers_) w.join();
    workers_.clear();
  }

  std::vector<std::thread> workers_;
  std::mutex m_, run_mutex_;
  std::condition_variable cv_;
  std::atomic<unsigned long long> gen_{0};
  std::atomic<int> next_{0};
  std::atomic<int> busy_{0};
  const std::function<void(int)>* fn_ = nullptr;
  int n_tasks_ = 0;
  int nthreads_ = 1;
  std::atomic<bool> stop_{false};
};

Pool& pool() {
  static Pool* p = new Pool();  // leaked on purpose: no joins during interpreter teardown
  return *p;
}

}  // namespace

void set_num_threads(int n) { pool().resize(n); }
int get_num_threads() { return pool().size(); }
void parallel_for(int n_tasks, const std::function<void(int)>& fn) { pool().run(n_tasks, fn); }

}  // namespace dwr
