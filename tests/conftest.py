"""Test-session settings. The suite's models are tiny: one intra-op thread is faster than two
(no OpenMP synchronisation per op) and keeps timings sane when the two cores are shared.
Subprocesses (torchrun, SIGKILL tests) inherit the environment variable."""
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
