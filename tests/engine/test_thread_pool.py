"""The engine's thread pool runs every task of every job exactly once, and never hangs.

Layers are jobs of a few tasks posted microseconds apart; a worker still finishing one job
must not claim a task of the next. Before the job slots were split by generation, a late
worker could claim "task n" of a finished job with the next job's function: a task ran
twice, the done count overshot, and the caller spun forever (within about 2,000 jobs on
2 threads). Each check runs in a subprocess with a timeout, so a hang fails instead of
stalling the suite.
"""

import subprocess
import sys

import pytest

SCRIPT = """
import sys
from dwr.engine import _kernels as k
k.set_num_threads(int(sys.argv[1]))
wrong = sum(k.check_pool(20000, 9) for _ in range(5))
k.set_num_threads(1)
print(wrong)
"""


@pytest.mark.parametrize("threads", [2, 3])
def test_back_to_back_jobs_run_each_task_once(threads):
    try:
        done = subprocess.run(
            [sys.executable, "-c", SCRIPT, str(threads)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"the thread pool hung on {threads} threads")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0"  # tasks that ran other than exactly once


def test_check_pool_rejects_bad_arguments():
    from dwr.engine import _kernels as k

    assert k.check_pool(0, 4) == 0
    with pytest.raises(ValueError, match="max_tasks >= 1"):
        k.check_pool(10, 0)
