"""The gbdt and mlp predictors, their held-out metrics and the files they save."""
import json
import math

import numpy as np
import pytest
from predictor_toys import width_cost

from mixnas.predictors import (GBDTPredictor, MLPPredictor, featurize, fit_predictor, held_out_split, load_metrics,
                               load_predictor, regression_metrics)


def test_metrics_against_hand_computed_values():
    m = regression_metrics([1.0, 2.0, 3.0, 4.0], [1.0, 3.0, 2.0, 4.0])
    # 6 pairs: only (2, 3) is discordant -> tau = (5 - 1) / 6
    assert m["kendall_tau"] == pytest.approx(4 / 6)
    assert m["rmse"] == pytest.approx(math.sqrt((0 + 1 + 1 + 0) / 4))
    assert m["mape"] == pytest.approx((0 + 1 / 2 + 1 / 3 + 0) / 4 * 100)
    assert m["n"] == 4
    assert regression_metrics([0.0, 1.0], [0.5, 1.0])["mape"] is None  # relative error undefined at 0
    with pytest.raises(ValueError, match="equal length"):
        regression_metrics([1.0, 2.0], [1.0])


def test_held_out_split_is_seeded_and_disjoint():
    tr, te = held_out_split(100, 0.2, seed=3)
    assert len(te) == 20 and len(tr) == 80 and not set(tr) & set(te)
    assert np.array_equal(te, held_out_split(100, 0.2, seed=3)[1])
    assert not np.array_equal(te, held_out_split(100, 0.2, seed=4)[1])
    with pytest.raises(ValueError, match="too few"):
        held_out_split(4, 0.2, seed=0)


def test_featurize_appends_context_columns(data):
    space, archs, X, _, names = data
    assert X.shape == (len(archs), len(names))
    assert np.array_equal(X[3, :-1], space.encode(archs[3]))
    scalar = featurize(space, archs[:2], {"src_len": 30})
    assert scalar[:, -1].tolist() == [30.0, 30.0]
    with pytest.raises(ValueError, match="one value or one per architecture"):
        featurize(space, archs[:3], {"src_len": [1, 2]})


@pytest.mark.parametrize("make", [lambda n: GBDTPredictor(n, seed=0),
                                  lambda n: MLPPredictor(n, seed=0, epochs=40)], ids=["gbdt", "mlp"])
def test_predictor_recovers_known_function_and_round_trips(data, make, tmp_path):
    _, _, X, y, names = data
    predictor = make(names)
    metrics = fit_predictor(predictor, X, y, test_fraction=0.2, seed=0, directory=tmp_path)
    assert metrics["held_out"]["kendall_tau"] > 0.8, metrics
    assert metrics["n_test"] == 200

    # held-out metrics are those of the saved model on the seeded split
    _, test = held_out_split(len(X), 0.2, seed=0)
    again = regression_metrics(y[test], predictor.predict(X[test]))
    assert again == metrics["held_out"] == load_metrics(tmp_path)["held_out"]

    # loading reads text/JSON (and a weights_only state dict): identical predictions
    loaded = load_predictor(tmp_path)
    assert type(loaded) is type(predictor)
    assert np.array_equal(loaded.predict(X), predictor.predict(X))
    meta = json.loads((tmp_path / "predictor.json").read_text())
    assert meta["feature_names"] == names


def test_mlp_training_is_seeded(data):
    _, _, X, y, names = data
    a = MLPPredictor(names, seed=5, epochs=3).fit(X, y).predict(X[:10])
    b = MLPPredictor(names, seed=5, epochs=3).fit(X, y).predict(X[:10])
    assert np.array_equal(a, b)


@pytest.mark.parametrize("make", [lambda n: GBDTPredictor(n, seed=0, log_target=True),
                                  lambda n: MLPPredictor(n, seed=0, epochs=40, log_target=True)], ids=["gbdt", "mlp"])
def test_latency_like_target_with_log_target(data, make, tmp_path):
    """A positive cost target (like latency) is fitted in log space and predicted back > 0."""
    space, archs, X, _, names = data
    n = 400
    y = np.array([width_cost(a) for a in archs[:n]]) / 1e5 * (1 + X[:n, -1] / 30)
    predictor = make(names)
    metrics = fit_predictor(predictor, X[:n], y, directory=tmp_path)
    assert metrics["held_out"]["mape"] < 10, metrics
    assert np.all(predictor.predict(X[:n]) > 0)
    assert np.array_equal(load_predictor(tmp_path).predict(X[:n]), predictor.predict(X[:n]))
    with pytest.raises(ValueError, match="positive targets"):
        make(names).fit(X[:n], y - y.mean())


def test_bad_inputs_give_clear_errors(data, tmp_path):
    _, _, X, y, names = data
    with pytest.raises(ValueError, match="not fitted"):
        GBDTPredictor(names).predict(X)
    fitted = GBDTPredictor(names, n_estimators=5).fit(X, y)
    with pytest.raises(ValueError, match=r"expected features of shape \(n, "):
        fitted.predict(X[:, :-1])
    with pytest.raises(ValueError, match="finite"):
        GBDTPredictor(names).fit(X, np.full(len(X), np.nan))
    with pytest.raises(ValueError, match="does not exist"):
        load_predictor(tmp_path / "nothing")
    fitted.save(tmp_path)
    with pytest.raises(ValueError, match="not 'mlp'"):
        MLPPredictor.load(tmp_path)
    (tmp_path / "model.txt").unlink()
    with pytest.raises(ValueError, match="model file .* is missing"):
        load_predictor(tmp_path)


def _damaged(predictor, directory, damage: str):
    """Save `predictor` into `directory`, then damage one of its files."""
    predictor.save(directory)
    meta_path = directory / "predictor.json"
    meta = json.loads(meta_path.read_text())
    model = directory / predictor.model_name
    if damage.startswith("old-"):  # a predictor saved before checksums were recorded
        del meta["model_sha256"]
        meta_path.write_text(json.dumps(meta))
        damage = damage[len("old-"):]
    if damage == "truncated-model":
        model.write_bytes(model.read_bytes()[: model.stat().st_size // 2])
    elif damage == "payload-model":
        import torch

        class Payload:
            def __reduce__(self):
                return __import__("os").system, ("true",)

        torch.save({"0.weight": Payload()}, model)
    elif damage == "bad-json":
        meta_path.write_text(meta_path.read_text()[:40])
    elif damage == "binary-json":
        meta_path.write_bytes(b"\xff\xfe\x00garbage")
    elif damage == "bad-param":
        meta_path.write_text(json.dumps({**meta, "params": {**meta["params"], "learning_rate": "fast"}}))
    elif damage == "bad-scale":
        meta_path.write_text(json.dumps({**meta, "x_scale": meta["x_scale"][:-1]}))
    return directory


SMALL = {"gbdt": lambda names: GBDTPredictor(names, seed=0, n_estimators=5),
         "mlp": lambda names: MLPPredictor(names, seed=0, hidden=8, layers=1, epochs=1)}


@pytest.mark.parametrize("kind, damage, message", [
    ("gbdt", "truncated-model", r"model.txt does not match the checksum in predictor.json"),
    ("gbdt", "old-truncated-model", r"model.txt is truncated or corrupt \(its trees end early\)"),  # not a segfault
    ("gbdt", "bad-json", r"predictor.json is not valid JSON"),
    ("gbdt", "binary-json", r"predictor.json is not text"),
    ("gbdt", "bad-param", r"predictor.json: parameter learning_rate must be a number >= 0, got 'fast'"),
    ("mlp", "truncated-model", r"model.pt does not match the checksum"),
    ("mlp", "old-truncated-model", r"cannot read predictor weights .*model.pt: it is truncated or corrupt"),
    ("mlp", "old-payload-model", r"model.pt: it holds Python objects outside the safe set"),
    ("mlp", "bad-scale", r"predictor.json: x_scale must be a list of \d+ finite numbers"),
])
def test_damaged_predictor_files_are_one_line_errors(data, tmp_path, kind, damage, message):
    _, _, X, y, names = data
    directory = _damaged(SMALL[kind](names).fit(X[:100], y[:100]), tmp_path, damage)
    with pytest.raises(ValueError, match=message) as err:
        load_predictor(directory)
    text = str(err.value)
    assert str(directory) in text and "`mixnas fit-predictor`" in text
    assert "\n" not in text and "weights_only" not in text


def test_damaged_metrics_file(data, tmp_path):
    _, _, X, y, names = data
    fit_predictor(SMALL["gbdt"](names), X[:100], y[:100], directory=tmp_path)
    (tmp_path / "metrics.json").write_text('{"held_out": ')
    with pytest.raises(ValueError, match=r"metrics.json is not valid JSON .*`mixnas fit-predictor`"):
        load_metrics(tmp_path)
