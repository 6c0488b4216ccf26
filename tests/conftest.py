"""Shared test set-up: plots draw off-screen, and torch uses few threads so tests stay quick on 2 cores."""
import os

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib  # noqa: E402
import torch  # noqa: E402

matplotlib.use("Agg")
torch.set_num_threads(2)
