"""MQAR task: model config from the data, loss and accuracy at the query positions, saving a
vocab_size-only LM, and `mixnas train --config mqar_softmax` end to end."""
import json
import re

import pytest
import torch
import torch.nn.functional as F

from mixnas.cli import main as mixnas_main
from mixnas.dataconf import ConfigError
from mixnas.families import family_for_task
from mixnas.families.lm.arch import LMArch, LMLayerArch
from mixnas.families.lm.config import LMConfig
from mixnas.families.mqar.data import IGNORE, MQARDataConfig
from mixnas.models import load_model, save_model
from mixnas.models.io import read_metadata

FAMILY = family_for_task("mqar")
ARCH = LMArch(embed_dim=16, layers=(LMLayerArch(ffn_dim=32, heads=2, attention="softmax"),
                                    LMLayerArch(ffn_dim=32, heads=2, attention="linear")), head_dim=8)


@pytest.fixture(scope="module")
def task():
    return FAMILY.build_task(MQARDataConfig(vocab_size=24, seq_len=20, num_pairs=4, train_examples=64,
                                            val_examples=40, test_examples=30, batch_size=8, eval_batch_size=16))


def test_model_config_comes_from_the_data(task):
    config = task.model_config({"dropout": 0.1})
    assert (config.vocab, config.vocab_size, config.context, config.dropout) == ("", 24, 20, 0.1)
    with pytest.raises(ValueError, match="set data.seq_len instead"):
        task.model_config({"context": 32})
    with pytest.raises(ValueError, match="model.config.vocab_size=30 does not match data.vocab_size=24"):
        task.model_config({"vocab_size": 30})
    with pytest.raises(ValueError, match="token ids, not characters"):
        task.model_config({"vocab": "abc"})


def test_loss_and_accuracy_count_the_queries_only(task):
    torch.manual_seed(0)
    model = FAMILY.build_model(ARCH, task.model_config())
    batch = next(iter(task.training_task(model, seed=1).train_batches))
    loss, stats = task.loss(model, batch)
    logits = model(batch.inputs)
    assert stats["sample_size"] == 8 * 4 == int(task.distill_mask(batch).sum())
    expected = F.cross_entropy(logits.reshape(-1, 24), batch.targets.reshape(-1), ignore_index=IGNORE)
    torch.testing.assert_close(loss / stats["sample_size"], expected)
    asked = batch.targets != IGNORE
    assert stats["correct"] == int((logits.argmax(-1)[asked] == batch.targets[asked]).sum())
    metrics = task.evaluate(model, "test")
    assert metrics["queries"] == 30 * 4 and 0 <= metrics["accuracy"] <= 1
    assert task.score_metrics(model, 16) == task.evaluate(model, "val", 16) and task.score_key() == ("accuracy", True)
    assert task.evaluate(model, "val", 16)["queries"] == 16 * 4
    with pytest.raises(ValueError, match="split 'dev' is not in this data"):
        task.evaluate(model, "dev")


def test_vocab_size_config_saves_and_loads(task, tmp_path):
    model = FAMILY.build_model(ARCH, task.model_config())
    save_model(model, tmp_path / "m", task=task)
    assert "vocab:" not in (tmp_path / "m" / "arch.yaml").read_text()
    loaded = load_model(tmp_path / "m")
    assert loaded.config == model.config and loaded.config.vocab_size == 24
    tokens = torch.randint(0, 24, (2, 20))
    torch.testing.assert_close(loaded(tokens), model.eval()(tokens))
    meta = read_metadata(tmp_path / "m")
    assert (meta["family"], meta["task"], meta["test_metric"], meta["test_higher_is_better"]) == \
        ("lm", "mqar", "accuracy", True)
    chars = LMConfig(vocab="abc", context=4)  # the character form: saved as before (no vocab_size key)
    assert chars.vocab_size == 3 and chars.to_dict()["vocab"] == "abc" and "vocab_size" not in chars.to_dict()
    assert LMConfig.from_dict(chars.to_dict()) == chars


@pytest.mark.parametrize("values, message", [
    ({}, "model.config.vocab: expected the characters (vocab) or a positive vocab_size, got neither"),
    ({"vocab": "abc", "vocab_size": 4}, "model.config.vocab_size: 4 disagrees with the 3 characters of vocab"),
    ({"vocab_size": -1}, "model.config.vocab_size: expected an integer >= 0"),
])
def test_lm_config_vocabulary_errors_are_one_line(values, message):
    with pytest.raises(ConfigError, match=re.escape(message)) as error:
        LMConfig.from_dict(values)
    assert "\n" not in str(error.value)


def test_a_config_without_characters_refuses_text():
    config = LMConfig(vocab_size=10)
    for call in (lambda: config.encode("ab"), lambda: config.decode([1, 2])):
        with pytest.raises(ValueError, match="10 token ids have no characters"):
            call()


def test_train_preset_end_to_end(tmp_path, capsys):
    run = tmp_path / "run"
    assert mixnas_main(["train", "--config", "mqar_softmax", f"train.save_dir={run}", "train.max_updates=3",
                        "train.warmup_updates=1", "train.progress=false", "train.tensorboard=false",
                        "train.validate_every=0", "train.checkpoint_every=0", "data.train_examples=64", "data.batch_size=16",
                        "data.val_examples=32", "data.test_examples=32"]) == 0
    assert "accuracy" in capsys.readouterr().out
    results = json.loads((run / "results.json").read_text())
    assert results["eval"]["split"] == "test" and 0 <= results["eval"]["accuracy"] <= 1
    assert results["eval"]["queries"] == 32 * 2
    assert mixnas_main(["cost", str(run / "model")]) == 0
