// A tiny persistent thread pool: run(n_tasks, fn) calls fn(task) for every task index,
// spread over the pool's threads plus the caller. Workers spin briefly between jobs
// (layers follow each other within microseconds), then sleep on a condition variable.
#pragma once
#include <functional>

namespace dwr {

void set_num_threads(int n);
int get_num_threads();
void parallel_for(int n_tasks, const std::function<void(int)>& fn);
// While on, the calling thread runs its parallel_for jobs inline and get_num_threads() is 1
// for it: at batch > 1 each of several caller threads then runs whole images on its own core,
// instead of all of them splitting every layer of one image.
void set_thread_serial(bool on);
// Runs `jobs` back-to-back jobs of 1..max_tasks tasks (as a model's layers do) and returns
// how many tasks ran other than exactly once: 0 for a sound pool (tests/engine).
long long check_pool(int jobs, int max_tasks);

}  // namespace dwr
