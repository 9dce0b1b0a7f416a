"""LightGBM gradient-boosted trees with RankNAS's settings (gbdt, max_depth 6, num_leaves 30,
learning rate 0.1): the default performance predictor. LightGBM rather than scikit-learn
because its model saves as plain text (`model_to_string`) and loads without pickle;
scikit-learn's boosted trees can only be pickled. `log_target=True` fits log(y), for positive
targets such as latency: relative errors then weigh equally, which is what MAPE and a latency
limit care about."""
from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..fileio import atomic_write_text
from .base import META_FILE, REFIT, FeaturePredictor
from .registry import register


class GBDTPredictor(FeaturePredictor):
    """LightGBM gbdt regressor, RankNAS settings by default."""

    model_name = "model.txt"

    @dataclass
    class Options:
        n_estimators: int = 300         # boosting rounds
        max_depth: int = 6
        num_leaves: int = 30
        learning_rate: float = 0.1
        min_child_samples: int = 10
        log_target: bool = False        # fit log(y): positive targets such as latency

    def __init__(self, feature_names, seed: int = 0, **options):
        super().__init__(feature_names, seed, **options)
        self.booster = None

    def _fit(self, X: np.ndarray, y: np.ndarray) -> None:
        import lightgbm as lgb

        p = dict(self.params)
        rounds = p.pop("n_estimators")
        p.pop("log_target")
        params = {"objective": "regression", "boosting_type": "gbdt", "verbosity": -1, "seed": self.seed,
                  "deterministic": True, "force_row_wise": True, "num_threads": 1, **p}
        data = lgb.Dataset(X, y, feature_name=[f"f{i}" for i in range(X.shape[1])], free_raw_data=True)
        self.booster = lgb.train(params, data, num_boost_round=rounds)

    def _predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(X, num_threads=1), dtype=np.float64)

    def _save_model(self, directory: Path) -> None:
        atomic_write_text(directory / self.model_name, self.booster.model_to_string())

    @classmethod
    def load(cls, directory: str | Path) -> "GBDTPredictor":
        import lightgbm as lgb

        obj, meta = cls._load_meta(directory)
        path = cls._model_path(directory, meta)
        text = _booster_text(path)
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # LightGBM prints "[Fatal] ..." besides raising
                obj.booster = lgb.Booster(model_str=text)
        except lgb.basic.LightGBMError as e:
            raise ValueError(f"predictor model file {path} is corrupt ({e}); {REFIT}") from None
        if obj.booster.num_feature() != len(obj.feature_names):
            raise ValueError(f"predictor model file {path} has {obj.booster.num_feature()} features but "
                             f"{META_FILE} names {len(obj.feature_names)}; {REFIT}")
        return obj


def _booster_text(path: Path) -> str:
    """The model text, after checking that each tree lies where `tree_sizes` says and that the
    tree section ends there: LightGBM reads trees at those offsets without bounds checks."""
    data = path.read_bytes()
    sizes = re.search(rb"^tree_sizes=([0-9 ]*)$", data, re.M)
    start = data.find(b"\nTree=0\n") + 1
    if not data.startswith(b"tree\n") or sizes is None or start == 0:
        raise ValueError(f"predictor model file {path} is not a LightGBM model text (corrupt); {REFIT}")
    offset = start
    for size in (int(v) for v in sizes.group(1).split()):
        if not data.startswith(b"Tree=", offset):
            break
        offset += size
    if not data.startswith(b"end of trees", offset):
        raise ValueError(f"predictor model file {path} is truncated or corrupt (its trees end early); {REFIT}")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"predictor model file {path} is not text (corrupt); {REFIT}") from None


register("gbdt", GBDTPredictor)
