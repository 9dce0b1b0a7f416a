"""eval.split / retrain.split are checked when the config is loaded, not after training."""
import pytest

from mixnas.dataconf import ConfigError
from mixnas.experiment import check_split, load_experiment
from mixnas.pipeline import load_pipeline_config


def test_classification_splits():
    exp = load_experiment("digits_vit")
    assert [check_split(s, exp) for s in ("train", "val", "test")] == ["train", "val", "test"]
    with pytest.raises(ConfigError, match=r"^eval.split: 'bogus' is not a split of this data \(train, val, test\)$"):
        load_experiment("digits_vit", ["eval.split=bogus"])
    with pytest.raises(ConfigError, match=r"^split: 'dev' is not a split"):
        check_split("dev", exp, "split")  # `mixnas evaluate split=dev` names its own key


def test_translation_splits_are_the_files_of_data_dir(tmp_path):
    for name in ("train", "valid", "test2016"):
        for lang in ("en", "de"):
            (tmp_path / f"{name}.{lang}").write_text("a\n")
    exp = load_experiment("multi30k_transformer", [f"data.dir={tmp_path}", "eval.split=test2016"])
    assert exp.eval.split == "test2016"
    with pytest.raises(ConfigError, match=rf"eval.split: 'test' is not a split of this data "
                                          rf"\(test2016, train, valid in {tmp_path}\)"):
        load_experiment("multi30k_transformer", [f"data.dir={tmp_path}"])


def test_retrain_split_is_checked_at_load():
    with pytest.raises(ConfigError, match=r"retrain.split: 'bogus' is not a split of this data \(train, val, test\)"):
        load_pipeline_config("micro", ["retrain.split=bogus"])
    assert load_pipeline_config("micro", ["retrain.split=val"]).retrain.split == "val"


def test_bad_split_in_the_train_command(tmp_path, capsys):
    from mixnas.cli import main

    rc = main(["train", "--config", "digits_vit", "eval.split=bogus", f"train.save_dir={tmp_path}"])
    err = capsys.readouterr().err
    assert rc == 2
    assert err == "mixnas train: error: eval.split: 'bogus' is not a split of this data (train, val, test)\n"
