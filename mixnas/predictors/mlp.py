"""HAT's latency predictor: an MLP features -> 400 -> 400 -> 400 -> 400 -> 1 in torch, saved as
a state_dict read back with `safe_torch_load` (weights only, no pickle)."""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..fileio import atomic_torch_save, safe_torch_load
from .base import META_FILE, REFIT, FeaturePredictor, numbers
from .registry import register


class MLPPredictor(FeaturePredictor):
    """HAT's latency MLP: features -> hidden x layers (ReLU) -> 1, on standardised inputs and
    targets, trained with Adam on mean squared error. Weight decay 1e-2 and 40 epochs by
    default: without them the 400-wide net memorises ~1600 noisy rows (train MAPE 0.1%,
    held-out 7.6% on the synthetic latency of benchmarks/search.py; 5.6% with them)."""

    model_name = "model.pt"

    @dataclass
    class Options:
        hidden: int = 400
        layers: int = 4
        epochs: int = 40
        batch_size: int = 128
        lr: float = 1e-3
        weight_decay: float = 1e-2
        threads: int = 1                # torch threads while fitting and predicting
        log_target: bool = False        # fit log(y): positive targets such as latency

    def __init__(self, feature_names, seed: int = 0, **options):
        super().__init__(feature_names, seed, **options)
        self.net = self._build()
        self.x_mean = self.x_scale = None
        self.y_mean = self.y_scale = 0.0

    def _build(self) -> nn.Sequential:
        dims = [len(self.feature_names)] + [self.params["hidden"]] * self.params["layers"]
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG
            torch.manual_seed(self.seed)
            blocks = [m for i, o in zip(dims, dims[1:]) for m in (nn.Linear(i, o), nn.ReLU())]
            return nn.Sequential(*blocks, nn.Linear(dims[-1], 1))

    @contextmanager
    def _threads(self):
        # A 400-wide MLP on a few hundred rows is small: one thread avoids contention on shared
        # CPUs (2 threads measured 2.4x slower per training step on a loaded 2-core machine).
        previous = torch.get_num_threads()
        torch.set_num_threads(self.params["threads"])
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        with self._threads():
            self._train(X, y)

    def _train(self, X: np.ndarray, y: np.ndarray) -> None:
        self.x_mean, std = X.mean(0), X.std(0)
        self.x_scale = np.where(std > 0, std, 1.0)  # constant features (e.g. fixed depth) stay 0
        self.y_mean, self.y_scale = float(y.mean()), float(y.std()) or 1.0
        xs = torch.from_numpy((X - self.x_mean) / self.x_scale).float()
        ys = torch.from_numpy((y - self.y_mean) / self.y_scale).float()
        self.net = self._build()
        opt = torch.optim.Adam(self.net.parameters(), lr=self.params["lr"], weight_decay=self.params["weight_decay"])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.params["epochs"])
        gen = torch.Generator().manual_seed(self.seed)
        bs = self.params["batch_size"]
        self.net.train()
        for _ in range(self.params["epochs"]):
            for idx in torch.randperm(len(xs), generator=gen).split(bs):
                loss = nn.functional.mse_loss(self.net(xs[idx]).squeeze(1), ys[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            sched.step()
        self.net.eval()

    def _predict(self, X: np.ndarray) -> np.ndarray:
        with torch.inference_mode(), self._threads():
            out = self.net(torch.from_numpy((X - self.x_mean) / self.x_scale).float()).squeeze(1).double().numpy()
        return out * self.y_scale + self.y_mean

    def _extra_meta(self) -> dict[str, Any]:
        return {"x_mean": self.x_mean.tolist(), "x_scale": self.x_scale.tolist(),
                "y_mean": self.y_mean, "y_scale": self.y_scale}

    def _save_model(self, directory: Path) -> None:
        atomic_torch_save(self.net.state_dict(), directory / self.model_name)

    @classmethod
    def load(cls, directory: str | Path) -> "MLPPredictor":
        obj, meta = cls._load_meta(directory)
        meta_path = Path(directory) / META_FILE
        width = len(obj.feature_names)
        obj.x_mean, obj.x_scale = (numbers(meta, key, width, meta_path) for key in ("x_mean", "x_scale"))
        obj.y_mean, obj.y_scale = (float(numbers(meta, key, None, meta_path)) for key in ("y_mean", "y_scale"))
        path = cls._model_path(directory, meta)
        state = safe_torch_load(path, "predictor weights", REFIT)
        try:
            obj.net.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as e:  # another shape, or not a state_dict
            cause = str(e).strip().splitlines()[-1].strip() if str(e).strip() else type(e).__name__
            raise ValueError(f"predictor weights {path} do not match {META_FILE} ({cause}); {REFIT}") from None
        obj.net.eval()
        return obj


register("mlp", MLPPredictor)
