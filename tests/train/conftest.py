import os
import subprocess
import sys

import pytest

TINY = ["--model", "resnet20_cifar", "--depths", "1", "1", "1", "--widths", "8", "8", "8"]


def tiny_spec(**changes):
    import dwr

    kwargs = {"depths": [1, 1, 1], "widths": [8, 8, 8], **changes}
    return dwr.get_spec("resnet20_cifar", **kwargs)


@pytest.fixture(scope="session")
def digits():
    from dwr.data import load_dataset

    return load_dataset("digits")


@pytest.fixture(scope="session")
def tiny():
    return tiny_spec


def run_cli(args, **kwargs):
    """``python -m dwr.cli.main ARGS`` in a subprocess with one torch thread."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    cmd = [sys.executable, "-m", "dwr.cli.main", *args]
    return subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def tiny_args():
    return list(TINY)
