"""Model config values: typed, range-checked, and named by their dotted path."""
import math

import pytest

from mixnas.dataconf import ConfigError
from mixnas.experiment import load_experiment
from mixnas.families.transformer.config import TransformerConfig
from mixnas.families.vit.config import ViTConfig
from mixnas.models.config import check_model_config
from mixnas.pipeline import load_pipeline_config


@pytest.mark.parametrize("values, message", [
    ({"patch_size": "abc"}, "model.config.patch_size: expected an integer, got 'abc'"),
    ({"dropout": "x"}, "model.config.dropout: expected a number, got 'x'"),
    ({"dropout": math.nan}, r"model.config.dropout: expected a number in \[0, 1\), got nan"),
    ({"dropout": "nan"}, r"model.config.dropout: expected a number in \[0, 1\), got nan"),  # as a YAML string
    ({"dropout": 1.0}, r"model.config.dropout: expected a number in \[0, 1\), got 1.0"),
    ({"num_classes": 0}, "model.config.num_classes: expected a positive integer, got 0"),
    ({"pool": "max"}, "model.config.pool: expected 'cls' or 'mean', got 'max'"),
    ({"attention_options": {"cosformer": 3}}, "model.config.attention_options: expected a mapping"),
    ({"patch_size": 3}, "model.config.patch_size: expected a divisor of image_size=32, got 3"),
    ({"patch_sise": 2}, "model.config: unknown key 'patch_sise'"),
])
def test_vit_config_values(values, message):
    with pytest.raises(ConfigError, match=message):
        ViTConfig.from_dict(values)


@pytest.mark.parametrize("values, message", [
    ({"max_len": 0}, "model.config.max_len: expected a positive integer, got 0"),
    ({"attention_dropout": math.inf}, r"model.config.attention_dropout: expected a number in \[0, 1\), got inf"),
    ({"shared_vocab": "yes"}, "model.config.shared_vocab: expected true or false, got 'yes'"),
    ({"tgt_vocab": 12}, "model.config.shared_vocab: needs src_vocab == tgt_vocab, got 10 and 12"),
    ({"eos_id": 10}, r"model.config.eos_id: expected an id inside the vocabulary \(< 10\), got 10"),
])
def test_transformer_config_values(values, message):
    with pytest.raises(ConfigError, match=message):
        TransformerConfig.from_dict({"src_vocab": 10, "tgt_vocab": 10, **values})


def test_direct_construction_is_checked_too():
    with pytest.raises(ValueError, match=r"ViTConfig.dropout: expected a number in \[0, 1\), got nan"):
        ViTConfig(dropout=math.nan)
    assert TransformerConfig.from_dict({"src_vocab": 10, "tgt_vocab": 10, "dropout": 0}).dropout == 0.0


def test_early_check_covers_only_the_given_keys():
    # patch_size 7 suits 28x28 Fashion-MNIST: the image size comes from the data, later
    check_model_config(ViTConfig, {"patch_size": 7})
    check_model_config(TransformerConfig, {"dropout": 0.3})  # the vocabulary comes from the tokenizer, later
    with pytest.raises(ConfigError, match=r"model.config.src_vocab: expected an integer, got 'big'"):
        check_model_config(TransformerConfig, {"src_vocab": "big"})


@pytest.mark.parametrize("override, message", [
    ("model.config.patch_size=abc", "model.config.patch_size: expected an integer, got 'abc'"),
    ("model.config.dropout=x", "model.config.dropout: expected a number, got 'x'"),
    ("model.config.dropout=nan", r"model.config.dropout: expected a number in \[0, 1\), got nan"),
])
def test_configs_are_checked_at_load_time(override, message):
    with pytest.raises(ConfigError, match=message):
        load_experiment("digits_vit", [override])
    with pytest.raises(ConfigError, match=message):
        load_pipeline_config("micro", [override])


def test_bad_model_config_in_the_train_command(tmp_path, capsys):
    from mixnas.cli import main

    rc = main(["train", "--config", "digits_vit", "model.config.dropout=nan", f"train.save_dir={tmp_path}"])
    err = capsys.readouterr().err
    assert rc == 2 and err == "mixnas train: error: model.config.dropout: expected a number in [0, 1), got nan\n"
    assert not any(tmp_path.iterdir())  # refused before anything was written
