// A tiny persistent thread pool: run(n_tasks, fn) calls fn(task) for every task index,
// spread over the pool's threads plus the caller. Workers spin briefly between jobs
// (layers follow each other within microseconds), then sleep on a condition variable.
#pragma once
#include <functional>

namespace dwr {

void set_num_threads(int n);
int get_num_threads();
void parallel_for(int n_tasks, const std::function<void(int)>& fn);
// Runs `jobs` back-to-back jobs of 1..max_tasks tasks (as a model's layers do) and returns
// how many tasks ran other than exactly once: 0 for a sound pool (tests/engine).
long long check_pool(int jobs, int max_tasks);

}  // namespace dwr
