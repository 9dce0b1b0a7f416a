"""The registry: built-in kinds, a new kind is one class plus one registration, and each kind's
typed options reach the model from the pipeline's YAML."""
import dataclasses
import json
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mixnas.dataconf import ConfigError
from mixnas.pipeline import load_pipeline_config
from mixnas.pipeline.collect import write_rows
from mixnas.pipeline.predict import fit_predictors, load_fitted
from mixnas.predictors import (GBDTPredictor, MLPPredictor, Predictor, build_predictor, featurize, fit_predictor,
                               held_out_split, load_metrics, load_predictor, predictor_kinds, register, registry)
from mixnas.space.search_space import SearchSpace


def test_builtin_kinds_and_their_default_options():
    assert {"gbdt", "mlp"} <= set(predictor_kinds())
    assert GBDTPredictor.kind == "gbdt" and MLPPredictor.kind == "mlp"
    assert GBDTPredictor.Options().num_leaves == 30 and MLPPredictor.Options().hidden == 400
    assert build_predictor("gbdt", None, feature_names=["a"]).params == GBDTPredictor(["a"]).params
    with pytest.raises(ValueError, match=r"predictor kind 'gbdt' is already registered"):
        register("gbdt", GBDTPredictor)
    with pytest.raises(ValueError, match=r"unknown predictor kind 'forest'; registered kinds: .*gbdt"):
        build_predictor("forest", feature_names=["a"])


@pytest.fixture
def scratch_registry(monkeypatch):
    """A copy of the registry, restored after the test, so a toy kind never leaks out."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))


def test_new_kind_is_one_class_and_one_registration(scratch_registry, data, tmp_path):
    # --- the whole new kind: the four methods of the interface, typed options, a registration ---
    @register("toy_mean")
    class MeanPredictor(Predictor):
        """Predicts the mean training target plus `offset`, whatever the features."""

        @dataclass
        class Options:
            offset: float = 0.0

        mean = None

        def fit(self, X, y):
            self.mean = float(np.mean(y))
            return self

        def predict(self, X):
            return np.full(len(X), self.mean + self.options.offset)

        def save(self, directory):
            Path(directory).mkdir(parents=True, exist_ok=True)
            (Path(directory) / "predictor.json").write_text(json.dumps(
                {"kind": self.kind, "feature_names": self.feature_names, "params": self.params, "mean": self.mean}))
            return Path(directory)

        @classmethod
        def load(cls, directory):
            meta = json.loads((Path(directory) / "predictor.json").read_text())
            obj = cls(meta["feature_names"], **meta["params"])
            obj.mean = meta["mean"]
            return obj
    # ----------------------------------------------------------------------------------------------
    _, _, X, y, names = data
    assert "toy_mean" in predictor_kinds()
    predictor = build_predictor("toy_mean", {"offset": 1}, feature_names=names)
    assert predictor.options.offset == 1.0  # typed: the YAML integer became the float field
    metrics = fit_predictor(predictor, X, y, directory=tmp_path)
    assert metrics["kind"] == "toy_mean" and load_metrics(tmp_path)["n_test"] == 200
    loaded = load_predictor(tmp_path)
    assert type(loaded) is MeanPredictor
    assert np.array_equal(loaded.predict(X[:5]), predictor.predict(X[:5]))
    train, _ = held_out_split(len(X), 0.2, seed=0)
    assert loaded.predict(X[:1])[0] == pytest.approx(np.mean(y[train]) + 1.0)
    with pytest.raises(ConfigError, match=r"^toy_mean predictor options\.scale: predictor kind 'toy_mean' has no "
                                          r"such option \(valid: offset\)$"):
        build_predictor("toy_mean", {"scale": 2}, feature_names=names)


def test_a_saved_kind_that_is_not_registered_is_a_one_line_error(data, tmp_path):
    _, _, X, y, names = data
    GBDTPredictor(names, n_estimators=2).fit(X[:50], y[:50]).save(tmp_path)
    meta = json.loads((tmp_path / "predictor.json").read_text())
    (tmp_path / "predictor.json").write_text(json.dumps({**meta, "kind": "forest"}))
    with pytest.raises(ValueError, match=r"names predictor kind 'forest', which is not registered .*"
                                         r"`mixnas fit-predictor`") as err:
        load_predictor(tmp_path)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("override, message", [
    ("predictor.score_options.bogus=1",
     r"^predictor\.score_options\.bogus: predictor kind 'gbdt' has no such option \(valid: n_estimators, "),
    ("predictor.score_options.num_leaves=many", r"^predictor\.score_options\.num_leaves: expected an integer, got 'many'$"),
    ("predictor.latency_options.learning_rate=-0.1",
     r"^predictor\.latency_options\.learning_rate must be a number >= 0, got -0\.1$"),
    ("predictor.score_options=3", r"^predictor\.score_options: expected a mapping, got 3$"),
    ("predictor.score=forest", r"^predictor\.score: 'forest' is not one of the registered predictor kinds: .*gbdt"),
])
def test_bad_predictor_options_are_one_line_config_errors(override, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_pipeline_config("micro", [override])
    assert "\n" not in str(err.value)


def _collected_table(cfg, path, n=60):
    """A collect.csv of `n` architectures of cfg's space with a known score and latency."""
    space = SearchSpace.load(cfg.supernet.space)
    rng = random.Random(0)
    archs = [space.sample(rng) for _ in range(n)]
    X = featurize(space, archs)
    w = np.random.default_rng(0).normal(size=X.shape[1])
    columns = ["index", "arch", "score", "latency_ms"] + [f"feat:{name}" for name in space.feature_names()]
    rows = [{"index": i, "arch": json.dumps(a.to_dict(), sort_keys=True), "score": float(x @ w),
             "latency_ms": 1.0 + float(np.abs(x).sum()) / 100, **{f"feat:{k}": v for k, v in zip(space.feature_names(), x)}}
            for i, (a, x) in enumerate(zip(archs, X))]
    write_rows(path, columns, rows)
    return path


def test_options_from_yaml_reach_the_saved_models(tmp_path):
    base = load_pipeline_config("micro", [f"run_dir={tmp_path / 'default'}"])
    tuned = load_pipeline_config("micro", [f"run_dir={tmp_path / 'tuned'}", "predictor.score_options.n_estimators=7",
                                           "predictor.score_options.num_leaves=3",
                                           "predictor.latency_options={learning_rate: 0.2}"])
    assert base.predictor.score_options == {} and tuned.predictor.score_options == {"n_estimators": 7, "num_leaves": 3}
    csv = _collected_table(base, tmp_path / "collect.csv")
    fit_predictors(base, csv)
    fit_predictors(tuned, csv)

    def saved(cfg, which):
        directory = tmp_path / Path(cfg.run_dir).name / "predictors" / which
        return json.loads((directory / "predictor.json").read_text())["params"], (directory / "model.txt").read_text()

    (default_params, default_model), (tuned_params, tuned_model) = saved(base, "score"), saved(tuned, "score")
    assert default_params == dataclasses.asdict(GBDTPredictor.Options())  # empty options: today's defaults
    assert tuned_params == {**default_params, "n_estimators": 7, "num_leaves": 3}
    assert tuned_model.count("Tree=") == 7 and default_model.count("Tree=") == 300
    assert "num_leaves: 3]" in tuned_model and "num_leaves: 30]" in default_model
    # the latency predictor keeps fitting log(latency) and takes its own options
    latency_params = saved(tuned, "latency")[0]
    assert latency_params["log_target"] is True and latency_params["learning_rate"] == 0.2
    assert saved(base, "latency")[0] == {**default_params, "log_target": True}
    assert type(load_fitted(tuned, "score")) is GBDTPredictor


def test_empty_options_leave_the_fingerprint_of_a_run_unchanged():
    """Runs fitted before the options existed recorded no predictor.*_options keys: an empty
    mapping flattens to nothing, so their fit-predictor fingerprint still matches."""
    from mixnas.pipeline.steps import default_values, step_values
    from mixnas.rundir import same_values
    cfg = load_pipeline_config("micro")
    values = step_values(cfg)["fit-predictor"]
    assert not [k for k in values if "_options" in k]
    defaults = default_values(cfg)["fit-predictor"]
    assert not [k for k in defaults if "_options" in k]
    tuned = step_values(load_pipeline_config("micro", ["predictor.score_options.num_leaves=20"]))["fit-predictor"]
    assert tuned["predictor.score_options.num_leaves"] == 20 and not same_values(values, tuned, defaults)
