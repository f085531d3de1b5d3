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

  // Tasks are claimed from one 64-bit ticket, (job generation << 32) | next task index, by
  // compare-and-swap, so a worker that wakes late can never claim a task of a newer job. The
  // caller works too and waits only for the tasks to be *done*: a descheduled worker that has
  // claimed nothing (a shared host may take its core away) does not hold the job up.
  //
  // A job's task count and function live in the slot of its generation's parity, written
  // before its ticket is published. A worker still in job g that reads job g's ticket before
  // job g+1 publishes its own reads job g's count from g's slot (g+1 writes the other one), so
  // it cannot claim a task past g's end with g+1's function; once g+1's ticket is out, the
  // stale worker's compare-and-swap fails. (With one shared count, such a worker once claimed
  // "task n" of a finished job: a task ran twice, the done count overshot, the caller spun.)
  void run(int n_tasks, const std::function<void(int)>& fn) {
    if (n_tasks <= 0) return;
    std::lock_guard<std::mutex> run_lock(run_mutex_);
    if (workers_.empty() || n_tasks == 1) {
      for (int t = 0; t < n_tasks; ++t) fn(t);
      return;
    }
    const unsigned long long gen = gen_.load(std::memory_order_relaxed) + 1;
    Job& job = jobs_[gen & 1];
    job.fn = &fn;
    job.n_tasks.store(n_tasks, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lk(m_);
      ticket_.store(gen << 32, std::memory_order_release);
      gen_.store(gen, std::memory_order_release);
    }
    cv_.notify_all();
    work(gen);
    // Yield after a short spin so that on an oversubscribed machine a worker that is running
    // a task gets the core back instead of us burning it.
    for (int spins = 0; done_.load(std::memory_order_acquire) < n_tasks; ++spins) {
      if (spins < 2000)
        cpu_relax();
      else
        std::this_thread::yield();
    }
  }

 private:
  struct Job {
    const std::function<void(int)>* fn = nullptr;
    std::atomic<int> n_tasks{0};
  };

  // Claims and runs tasks of job `gen` until none is left (or a newer job replaced it).
  void work(unsigned long long gen) {
    const Job& job = jobs_[gen & 1];
    for (;;) {
      unsigned long long t = ticket_.load(std::memory_order_acquire);
      int task;
      for (;;) {
        if ((t >> 32) != gen) return;
        task = static_cast<int>(t & 0xffffffffULL);
        if (task >= job.n_tasks.load(std::memory_order_acquire)) return;
        if (ticket_.compare_exchange_weak(t, t + 1, std::memory_order_acq_rel,
                                          std::memory_order_acquire))
          break;
      }
      (*job.fn)(task);  // the job cannot end before this claimed task is done
      done_.fetch_add(1, std::memory_order_release);
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
      work(seen);
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
  std::atomic<unsigned long long> ticket_{0};
  Job jobs_[2];  // by generation parity
  std::atomic<int> done_{0};
  int nthreads_ = 1;
  std::atomic<bool> stop_{false};
};

Pool& pool() {
  static Pool* p = new Pool();  // leaked on purpose: no joins during interpreter teardown
  return *p;
}

}  // namespace

static thread_local bool t_serial = false;  // see set_thread_serial

void set_num_threads(int n) { pool().resize(n); }
int get_num_threads() { return t_serial ? 1 : pool().size(); }
void set_thread_serial(bool on) { t_serial = on; }
void parallel_for(int n_tasks, const std::function<void(int)>& fn) {
  if (t_serial) {
    for (int t = 0; t < n_tasks; ++t) fn(t);
    return;
  }
  pool().run(n_tasks, fn);
}

long long check_pool(int jobs, int max_tasks) {
  max_tasks = std::max(1, max_tasks);
  std::vector<std::atomic<int>> hits(static_cast<size_t>(max_tasks));
  long long wrong = 0;
  for (int j = 0; j < jobs; ++j) {
    const int n = 1 + (j * 7 + j / 3) % max_tasks;  // sizes change from job to job
    for (int t = 0; t < n; ++t) hits[t].store(0, std::memory_order_relaxed);
    parallel_for(n, [&](int t) { hits[t].fetch_add(1, std::memory_order_relaxed); });
    for (int t = 0; t < n; ++t) wrong += hits[t].load(std::memory_order_relaxed) != 1;
  }
  return wrong;
}

}  // namespace dwr
