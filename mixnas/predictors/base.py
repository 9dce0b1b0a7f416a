"""The predictor interface, the shared checks and file format of the feature predictors, and
the held-out quality every predictor is judged by.

A predictor is a regressor from architecture features (`featurize`) to a number (a score or a
latency). `Predictor` is the whole contract a search and the pipeline rely on: `fit(X, y)`,
`predict(X)`, `save(directory)` and the classmethod `load(directory)`, built as
`cls(feature_names, seed=..., **options)` where the options are the fields of the class's
typed `Options` dataclass (its hyper-parameters, settable from YAML as
`predictor.score_options` / `predictor.latency_options`). `FeaturePredictor` implements the
contract once for models on a fixed feature list: input and target checks, `log_target`, and
saving as `predictor.json` (kind, feature names, seed, options, the model file's checksum)
beside one model file, read back without pickle. A new kind subclasses either and registers
itself (see registry.py).

`fit_predictor` fits on a seeded split and writes held-out Kendall tau, RMSE and MAPE
(`regression_metrics`) to `metrics.json` next to the saved model, so the saved model is the one
the metrics describe.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np
from scipy.stats import kendalltau

from ..fileio import write_json

META_FILE, METRICS_FILE = "predictor.json", "metrics.json"
REFIT = "refit it with `mixnas fit-predictor`"  # the fix for any damaged predictor file


# ---------------------------------------------------------------- the interface
class Predictor(ABC):
    """Features -> one number per row. `kind` is set by `register`; `Options` holds the
    hyper-parameters (field defaults are the defaults), given to the constructor as keywords."""

    kind: ClassVar[str] = ""

    @dataclasses.dataclass
    class Options:
        pass

    def __init__(self, feature_names: Sequence[str], seed: int = 0, **options: Any):
        self.feature_names = list(feature_names)
        self.seed = int(seed)
        self.options = self.Options(**options)
        self.params = dataclasses.asdict(self.options)  # as saved in predictor.json

    @abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray) -> "Predictor":
        """Fit on features X (n, len(feature_names)) and targets y (n,); returns self."""

    @abstractmethod
    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions (n,) of a fitted predictor."""

    @abstractmethod
    def save(self, directory: str | Path) -> Path:
        """Write the fitted predictor into `directory`, with `predictor.json` naming its kind."""

    @classmethod
    @abstractmethod
    def load(cls, directory: str | Path) -> "Predictor":
        """Read back what `save` wrote (no pickle, no code execution)."""


def option_problem(default: Any, value: Any) -> str | None:
    """What `value` of an option with this default must be, or None when it is fine. Flags are
    true or false; counts and rates are never negative (nor nan). Other options are not checked."""
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, (int, float)):
        kinds = (int, float) if isinstance(default, float) else (int,)
        if isinstance(value, kinds) and not isinstance(value, bool) and value >= 0:
            return None
        return "a number >= 0" if isinstance(default, float) else "an integer >= 0"
    return None


def option_defaults(cls: type[Predictor]) -> dict[str, Any]:
    return {f.name: f.default for f in dataclasses.fields(cls.Options)}


# ---------------------------------------------------------------- predictors on a fixed feature list
class FeaturePredictor(Predictor):
    """Common checks and saving; subclasses implement `_fit`, `_predict`, `_save_model` and
    `load` (with `_load_meta` and `_model_path`), and may add `_extra_meta`."""

    model_name = ""  # the model file saved beside predictor.json

    def __init__(self, feature_names: Sequence[str], seed: int = 0, **options: Any):
        super().__init__(feature_names, seed, **options)
        self.fitted = False

    def fit(self, X: np.ndarray, y: np.ndarray) -> "FeaturePredictor":
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
    def _load_meta(cls, directory: str | Path) -> tuple["FeaturePredictor", dict[str, Any]]:
        """(an instance built from the checked predictor.json, marked fitted; the description):
        the start of every subclass's `load`, which then reads `_model_path(directory, meta)`."""
        meta = _read_meta(directory, cls.kind)
        _check_params(cls, meta["params"], Path(directory) / META_FILE)
        obj = cls(meta["feature_names"], seed=meta["seed"], **meta["params"])
        obj.fitted = True
        return obj, meta

    @classmethod
    def _model_path(cls, directory: str | Path, meta: dict[str, Any]) -> Path:
        """The model file, present and matching the checksum in predictor.json."""
        return _model_file(directory, cls.model_name, meta)

    def _extra_meta(self) -> dict[str, Any]:
        return {}

    @abstractmethod
    def _fit(self, X: np.ndarray, y: np.ndarray) -> None: ...

    @abstractmethod
    def _predict(self, X: np.ndarray) -> np.ndarray: ...

    @abstractmethod
    def _save_model(self, directory: Path) -> None: ...


# ---------------------------------------------------------------- held-out quality
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


def load_metrics(directory: str | Path) -> dict[str, Any]:
    path = Path(directory) / METRICS_FILE
    metrics = _read_json(path, "predictor metrics")
    if not isinstance(metrics, dict) or not isinstance(metrics.get("held_out"), dict):
        raise ValueError(f"predictor metrics {path} lack the held_out section; {REFIT}")
    return metrics


# ---------------------------------------------------------------- reading saved files
def read_description(directory: str | Path) -> dict[str, Any]:
    """predictor.json as a mapping that names a kind (which kind is the caller's question)."""
    path = Path(directory) / META_FILE
    meta = _read_json(path, "predictor description")
    if not isinstance(meta, dict) or not isinstance(meta.get("kind"), str):
        raise ValueError(f"{path} does not describe a predictor (it names no kind); {REFIT}")
    return meta


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise ValueError(f"{what} {path} does not exist; {REFIT}")
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError(f"{what} {path} is not text (corrupt); {REFIT}") from None
    except json.JSONDecodeError as e:
        raise ValueError(f"{what} {path} is not valid JSON ({e.msg} at line {e.lineno}); {REFIT}") from None


def _read_meta(directory: str | Path, kind: str) -> dict[str, Any]:
    path = Path(directory) / META_FILE
    meta = read_description(directory)
    if meta["kind"] != kind:
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
    """Each saved param is an option of the predictor with the type of its default, so a doctored
    file fails here rather than deep inside LightGBM or torch."""
    defaults = option_defaults(cls)
    for name, value in params.items():
        if name not in defaults:
            raise ValueError(f"{path}: unknown {cls.kind} parameter {name!r}; {REFIT}")
        expected = option_problem(defaults[name], value)
        if expected is not None:
            raise ValueError(f"{path}: parameter {name} must be {expected}, got {value!r}; {REFIT}")


def numbers(meta: dict[str, Any], key: str, length: int | None, path: Path) -> Any:
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
