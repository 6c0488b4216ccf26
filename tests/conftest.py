"""Shared test set-up: plots draw off-screen, and torch uses one thread (small tensors, shared cores: more threads only contend)."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402
import torch  # noqa: E402

matplotlib.use("Agg")
torch.set_num_threads(1)
