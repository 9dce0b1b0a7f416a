"""Performance and latency predictors: regressors from architecture features to a number.

Two models, each with `fit(X, y)`, `predict(X)`, `save(dir)` and `load(dir)`:
- `GBDTPredictor`: LightGBM gradient-boosted trees with RankNAS's settings (gbdt, max_depth 6,
  num_leaves 30, learning rate 0.1), the default performance predictor. LightGBM rather than
  scikit-learn because its model saves as plain text (`model_to_string`) and loads without
  pickle; scikit-learn's boosted trees can only be pickled.
- `MLPPredictor`: HAT's latency predictor, an MLP features -> 400 -> 400 -> 400 -> 400 -> 1 in
  torch, saved as a state_dict loaded with `weights_only=True`.
Both take `log_target=True` for positive targets such as latency: fitting log(y) weighs
relative errors equally, which is what MAPE and a latency limit care about.

Features are `space.encode(arch)` plus numeric context such as the sequence length
(`featurize`). `fit_predictor` fits on a seeded split and writes held-out Kendall tau, RMSE and
MAPE to `metrics.json` next to the saved model, so the saved model is the one the metrics
describe.
"""
from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import json
import math
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from scipy.stats import kendalltau
from torch import nn

from ..fileio import atomic_torch_save, atomic_write_text, safe_torch_load, write_json

META_FILE, METRICS_FILE = "predictor.json", "metrics.json"
REFIT = "refit it with `mixnas fit-predictor`"  # the fix for any damaged predictor file


# ---------------------------------------------------------------- features
def context_names(context: Mapping[str, Any] | None) -> list[str]:
    return [f"ctx:{k}" for k in (context or {})]


def featurize(space, archs: Sequence[Any], context: Mapping[str, Any] | None = None) -> np.ndarray:
    """Rows of `space.encode(arch)` followed by context columns (sorted by insertion order).
    A context value is a scalar (same for every arch) or a sequence with one value per arch.
    Column names: `space.feature_names() + context_names(context)`."""
    if not archs:
        return np.zeros((0, len(space.feature_names()) + len(context or {})))
    X = np.stack([np.asarray(space.encode(a), dtype=np.float64) for a in archs])
    cols = []
    for key, value in (context or {}).items():
        v = np.broadcast_to(np.asarray(value, dtype=np.float64), (len(archs),)) if np.ndim(value) == 0 \
            else np.asarray(value, dtype=np.float64)
        if v.shape != (len(archs),):
            raise ValueError(f"context {key!r} has {v.size} values for {len(archs)} architectures; give one value or one per architecture")
        cols.append(v[:, None])
    return np.hstack([X, *cols]) if cols else X


# ---------------------------------------------------------------- metrics
def regression_metrics(y_true: Sequence[float], y_pred: Sequence[float]) -> dict[str, Any]:
    """Kendall tau-b (ranking agreement, what a search cares about), RMSE, and MAPE in percent
    (None when a true value is 0, where a relative error has no meaning)."""
    t, p = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    if t.shape != p.shape or t.ndim != 1 or t.size < 2:
        raise ValueError(f"metrics need two 1-D arrays of equal length >= 2, got shapes {t.shape} and {p.shape}")
    tau = kendalltau(t, p).statistic
    return {
        "n": int(t.size),
        "kendall_tau": None if math.isnan(tau) else float(tau),
        "rmse": float(np.sqrt(np.mean((p - t) ** 2))),
        "mape": None if np.any(t == 0) else float(np.mean(np.abs(p - t) / np.abs(t)) * 100.0),
    }


def held_out_split(n: int, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded random (train, test) index split."""
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    n_test = int(round(n * test_fraction))
    if n_test < 2 or n - n_test < 2:
        raise ValueError(f"{n} samples are too few to hold out {test_fraction:.0%}; collect more samples")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


# ---------------------------------------------------------------- models
class Predictor:
    """Common checks and saving; subclasses implement `_fit`, `_predict`, `_save_model`, `_load_model`."""

    kind = ""
    model_name = ""  # the model file saved beside predictor.json

    def __init__(self, feature_names: Sequence[str], seed: int = 0, **params: Any):
        self.feature_names = list(feature_names)
        self.seed = int(seed)
        self.params = params
        self.fitted = False

    def fit(self, X: np.ndarray, y: np.ndarray) -> "Predictor":
        X, y = self._check_X(X), np.asarray(y, dtype=np.float64)
        if y.shape != (len(X),) or not np.all(np.isfinite(y)):
            raise ValueError(f"targets must be {len(X)} finite numbers, got shape {y.shape}")
        if len(X) < 2:
            raise ValueError(f"cannot fit a predictor on {len(X)} samples")
        if self.params.get("log_target"):
            if np.any(y <= 0):
                raise ValueError("log_target=True needs positive targets (e.g. latency); got a value <= 0")
            y = np.log(y)
        self._fit(X, y)
        self.fitted = True
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        if not self.fitted:
            raise ValueError(f"{type(self).__name__} is not fitted; call fit(X, y) or load a saved one")
        X = self._check_X(X)
        if not len(X):
            return np.zeros(0)
        out = self._predict(X)
        return np.exp(out) if self.params.get("log_target") else out

    def _check_X(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise ValueError(f"expected features of shape (n, {len(self.feature_names)}) "
                             f"({', '.join(self.feature_names[:4])}, ...), got {X.shape}; featurize with the same space and context")
        return X

    def save(self, directory: str | Path) -> Path:
        if not self.fitted:
            raise ValueError("cannot save an unfitted predictor")
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self._save_model(directory)
        # The checksum lets load() refuse a truncated or edited model file before LightGBM parses
        # it (LightGBM crashes the process on a truncated model text instead of raising).
        write_json(directory / META_FILE, {"kind": self.kind, "feature_names": self.feature_names,
                                           "seed": self.seed, "params": self.params,
                                           "model_sha256": _sha256(directory / self.model_name),
                                           **self._extra_meta()})
        return directory

    @classmethod
    def _from_meta(cls, meta: dict[str, Any], path: Path) -> "Predictor":
        _check_params(cls, meta["params"], path)
        obj = cls(meta["feature_names"], seed=meta["seed"], **meta["params"])
        obj.fitted = True
        return obj

    def _extra_meta(self) -> dict[str, Any]:
        return {}


class GBDTPredictor(Predictor):
    """LightGBM gbdt regressor, RankNAS settings by default."""

    kind = "gbdt"
    model_name = "model.txt"

    def __init__(self, feature_names: Sequence[str], seed: int = 0, *, n_estimators: int = 300,
                 max_depth: int = 6, num_leaves: int = 30, learning_rate: float = 0.1, min_child_samples: int = 10,
                 log_target: bool = False):
        super().__init__(feature_names, seed, n_estimators=n_estimators, max_depth=max_depth, num_leaves=num_leaves,
                         learning_rate=learning_rate, min_child_samples=min_child_samples, log_target=log_target)
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
        atomic_write_text(directory / "model.txt", self.booster.model_to_string())

    @classmethod
    def load(cls, directory: str | Path) -> "GBDTPredictor":
        import lightgbm as lgb

        meta = _read_meta(directory, cls.kind)
        obj = cls._from_meta(meta, Path(directory) / META_FILE)
        path = _model_file(directory, cls.model_name, meta)
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


class MLPPredictor(Predictor):
    """HAT's latency MLP: features -> hidden x layers (ReLU) -> 1, on standardised inputs and
    targets, trained with Adam on mean squared error. Weight decay 1e-2 and 40 epochs by
    default: without them the 400-wide net memorises ~1600 noisy rows (train MAPE 0.1%,
    held-out 7.6% on the synthetic latency of benchmarks/search.py; 5.6% with them)."""

    kind = "mlp"
    model_name = "model.pt"

    def __init__(self, feature_names: Sequence[str], seed: int = 0, *, hidden: int = 400, layers: int = 4,
                 epochs: int = 40, batch_size: int = 128, lr: float = 1e-3, weight_decay: float = 1e-2,
                 threads: int = 1, log_target: bool = False):
        super().__init__(feature_names, seed, hidden=hidden, layers=layers, epochs=epochs, batch_size=batch_size,
                         lr=lr, weight_decay=weight_decay, threads=threads, log_target=log_target)
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
        atomic_torch_save(self.net.state_dict(), directory / "model.pt")

    @classmethod
    def load(cls, directory: str | Path) -> "MLPPredictor":
        meta = _read_meta(directory, cls.kind)
        meta_path = Path(directory) / META_FILE
        obj = cls._from_meta(meta, meta_path)
        width = len(obj.feature_names)
        obj.x_mean, obj.x_scale = (_numbers(meta, key, width, meta_path) for key in ("x_mean", "x_scale"))
        obj.y_mean, obj.y_scale = (float(_numbers(meta, key, None, meta_path)) for key in ("y_mean", "y_scale"))
        path = _model_file(directory, cls.model_name, meta)
        state = safe_torch_load(path, "predictor weights", REFIT)
        try:
            obj.net.load_state_dict(state)
        except (RuntimeError, TypeError, AttributeError) as e:  # another shape, or not a state_dict
            cause = str(e).strip().splitlines()[-1].strip() if str(e).strip() else type(e).__name__
            raise ValueError(f"predictor weights {path} do not match {META_FILE} ({cause}); {REFIT}") from None
        obj.net.eval()
        return obj


PREDICTORS: dict[str, type[Predictor]] = {"gbdt": GBDTPredictor, "mlp": MLPPredictor}


def make_predictor(kind: str, feature_names: Sequence[str], seed: int = 0, **params: Any) -> Predictor:
    if kind not in PREDICTORS:
        raise ValueError(f"unknown predictor kind {kind!r}; choose one of {sorted(PREDICTORS)}")
    return PREDICTORS[kind](feature_names, seed, **params)


def load_predictor(directory: str | Path) -> Predictor:
    """Load a predictor saved with `save` (no pickle, no code execution)."""
    kind = _read_meta(directory, None)["kind"]
    return PREDICTORS[kind].load(directory)


def load_metrics(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / METRICS_FILE
    metrics = _read_json(path, "predictor metrics")
    if not isinstance(metrics, dict) or not isinstance(metrics.get("held_out"), dict):
        raise ValueError(f"predictor metrics {path} lack the held_out section; {REFIT}")
    return metrics


def fit_predictor(predictor: Predictor, X: np.ndarray, y: np.ndarray, *, test_fraction: float = 0.2,
                  seed: int = 0, directory: str | Path | None = None) -> dict[str, Any]:
    """Fit on a seeded train split, measure on the held-out rest, optionally save the model
    with `metrics.json` beside it. Returns the metrics (held-out and, for reference, train)."""
    X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(X) != len(y):
        raise ValueError(f"{len(X)} feature rows but {len(y)} targets")
    train, test = held_out_split(len(X), test_fraction, seed)
    predictor.fit(X[train], y[train])
    metrics = {"kind": predictor.kind, "split_seed": seed, "test_fraction": test_fraction,
               "n_train": int(len(train)), "n_test": int(len(test)),
               "held_out": regression_metrics(y[test], predictor.predict(X[test])),
               "train": regression_metrics(y[train], predictor.predict(X[train]))}
    if directory is not None:
        predictor.save(directory)
        write_json(Path(directory) / METRICS_FILE, metrics)
    return metrics


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise ValueError(f"{what} {path} does not exist; {REFIT}")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{what} {path} is not text (corrupt); {REFIT}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} {path} is not valid JSON ({e.msg} at line {e.lineno}); {REFIT}") from None


def _read_meta(directory: str | Path, kind: str | None) -> dict[str, Any]:
    path = Path(directory) / META_FILE
    meta = _read_json(path, "predictor description")
    if not isinstance(meta, dict) or meta.get("kind") not in PREDICTORS:
        raise ValueError(f"{path} does not describe a predictor (kind must be one of {sorted(PREDICTORS)}); {REFIT}")
    if kind is not None and meta["kind"] != kind:
        raise ValueError(f"{directory} holds a {meta['kind']!r} predictor, not {kind!r}; use load_predictor()")
    names, seed, params = meta.get("feature_names"), meta.get("seed"), meta.get("params")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{path}: feature_names must be a non-empty list of names; {REFIT}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"{path}: seed must be an integer, got {seed!r}; {REFIT}")
    if not isinstance(params, dict):
        raise ValueError(f"{path}: params must be a mapping, got {params!r}; {REFIT}")
    return meta


def _check_params(cls: type[Predictor], params: dict[str, Any], path: Path) -> None:
    """Each saved param is a keyword of the predictor with the type of its default, so a doctored
    file fails here rather than deep inside LightGBM or torch."""
    defaults = {name: p.default for name, p in inspect.signature(cls.__init__).parameters.items()
                if p.kind is p.KEYWORD_ONLY}
    for name, value in params.items():
        if name not in defaults:
            raise ValueError(f"{path}: unknown {cls.kind} parameter {name!r}; {REFIT}")
        default = defaults[name]
        if isinstance(default, bool):
            ok, expected = isinstance(value, bool), "true or false"
        else:  # counts and rates: never negative (nor nan)
            kinds = (int, float) if isinstance(default, float) else (int,)
            ok = isinstance(value, kinds) and not isinstance(value, bool) and value >= 0
            expected = "a number >= 0" if isinstance(default, float) else "an integer >= 0"
        if not ok:
            raise ValueError(f"{path}: parameter {name} must be {expected}, got {value!r}; {REFIT}")


def _numbers(meta: dict[str, Any], key: str, length: int | None, path: Path) -> Any:
    """meta[key] as finite numbers: a list of `length`, or one number when `length` is None."""
    value = meta.get(key)
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = np.asarray([np.nan])
    shape = () if length is None else (length,)
    if array.shape != shape or not np.all(np.isfinite(array)):
        what = "a finite number" if length is None else f"a list of {length} finite numbers"
        raise ValueError(f"{path}: {key} must be {what}; {REFIT}")
    return array


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _model_file(directory: str | Path, name: str, meta: dict[str, Any]) -> Path:
    path = Path(directory) / name
    if not path.is_file():
        raise ValueError(f"predictor model file {path} is missing; {REFIT}")
    expected = meta.get("model_sha256")  # absent in predictors saved before checksums were written
    if expected is not None and _sha256(path) != expected:
        raise ValueError(f"predictor model file {path} does not match the checksum in {META_FILE} "
                         f"(truncated, edited, or from another fit); {REFIT}")
    return path


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
