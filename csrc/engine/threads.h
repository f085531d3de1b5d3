// A tiny persistent thread pool: run(n_tasks, fn) calls fn(task) for every task index,
// spread over the pool's threads plus the caller. Workers spin briefly between jobs
// (layers follow each other within microseconds), then sleep on a condition variable.
#pragma once
#include <functional>

namespace dwr {

void set_num_threads(int n);
int get_num_threads();
void parallel_for(int n_tasks, const std::function<void(int)>& fn);

}  // namespace dwr
