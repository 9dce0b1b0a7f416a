"""`mixnas train` / `mixnas evaluate` end to end on tiny budgets, and their one-line errors."""
import json
from pathlib import Path

import pytest
import yaml

from mixnas.cli import main
from mixnas.models import load_model

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def test_digits_train_then_evaluate(tmp_path, capsys):
    run = tmp_path / "run"
    rc = main(["train", "--config", "digits_vit", f"train.save_dir={run}", "train.max_updates=40",
               "train.warmup_updates=5", "train.checkpoint_every=20", "train.validate_every=20",
               "train.tensorboard=false", "train.progress=false", "eval.average_last=2",
               "data.batch_size=32"])
    assert rc == 0
    results = json.loads((run / "results.json").read_text())
    # One full checkpoint (resume needs no more); the older one averaged is thinned to its weights.
    assert [Path(p).name for p in results["averaged_checkpoints"]] == ["weights_00000020.pt", "checkpoint_00000040.pt"]
    assert sorted(p.name for p in run.glob("*_000000*.pt")) == ["checkpoint_00000040.pt", "weights_00000020.pt"]
    assert "1 full checkpoint(s), train.keep_last; weights of 1 more for averaging" in capsys.readouterr().out
    assert results["train"]["step"] == 40
    assert 0.0 <= results["eval"]["accuracy"] <= 1.0
    # The exported model directory is self-contained: preprocessing and model.json with the results.
    meta = json.loads((run / "model" / "model.json").read_text())
    assert meta["eval"] == results["eval"] and meta["command"].startswith("mixnas train --config digits_vit ")
    assert (run / "model" / "preprocessing.json").is_file()
    # The exported model reproduces the reported test accuracy through `mixnas evaluate`.
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run / "model"), "--json", str(tmp_path / "m.json")]) == 0
    again = json.loads((tmp_path / "m.json").read_text())
    assert again["accuracy"] == pytest.approx(results["eval"]["accuracy"])
    assert load_model(run / "model").arch.layers[0].attention == "softmax"
    # A checkpoint or weight file evaluates too (the weights of update 20, not the average).
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run / "weights_00000020.pt"), "split=val"]) == 0
    assert capsys.readouterr().out.startswith("val: ")


@pytest.mark.parametrize("argv, message", [
    (["train", "--config", "no_such_preset"], "no experiment config 'no_such_preset'"),
    (["train", "--config", "digits_vit", "train.lr=fast"], "train.lr: expected a number, got 'fast'"),
    (["train", "--config", "digits_vit", "model.arch=missing_arch"], "model.arch 'missing_arch' is neither a file nor a preset"),
    (["train", "--config", "digits_vit", "data.name=mnist"], "unknown image dataset 'mnist'"),
    (["train", "--config", "digits_vit", "train.optimizer=sgd"], "optimizer must be one of"),
    (["train", "--config", "multi30k_transformer"], "data.dir is required for translation"),
    (["train", "--config", "digits_vit", "model.arch=transformer_multi30k_softmax"], "but the task is classification"),
    (["evaluate", "--checkpoint", "/nonexistent/model"], "does not exist"),
])
def test_bad_input_is_one_line_exit_2(argv, message, capsys, tmp_path):
    argv = argv + ([f"train.save_dir={tmp_path}"] if argv[0] == "train" else [])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_translation_train_and_bleu(tmp_path):
    src = SHARED / "multi30k"
    if not (src / "train.en").is_file():
        pytest.skip(f"Multi30k not found at {src} (../shared/data beside the repository)")
    data = tmp_path / "data"
    data.mkdir()
    for split, n in (("train", 3000), ("val", 60), ("test", 30)):  # a small slice keeps this fast
        for lang in ("en", "de"):
            lines = (src / f"{split}.{lang}").read_text(encoding="utf-8").splitlines()[:n]
            (data / f"{split}.{lang}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    arch = {"type": "transformer", "encoder_embed_dim": 32, "decoder_embed_dim": 32, "qkv_dim": 32,
            "encoder_layers": [{"ffn_dim": 64, "heads": 2, "attention": "cosformer"}],
            "decoder_layers": [{"ffn_dim": 64, "heads": 2, "attention": "softmax", "cross_heads": 2,
                                "cross_attention": "cosformer", "cross_layers": 1}]}
    (tmp_path / "arch.yaml").write_text(yaml.safe_dump(arch))
    run = tmp_path / "run"
    rc = main(["train", "--config", "multi30k_transformer", f"data.dir={data}", "data.vocab_size=500",
               f"data.cache_dir={tmp_path / 'cache'}", "data.max_tokens=1024", f"model.arch={tmp_path / 'arch.yaml'}",
               f"train.save_dir={run}", "train.max_updates=12", "train.warmup_updates=4",
               "train.checkpoint_every=4", "train.validate_every=0", "train.tensorboard=false",
               "train.progress=false", "eval.average_last=3"])
    assert rc == 0
    ev = json.loads((run / "results.json").read_text())["eval"]
    assert ev["sentences"] == 30 and 0.0 <= ev["bleu"] <= 100.0 and 0.0 <= ev["tok_bleu"] <= 100.0
    assert ev["loss"] > ev["nll"] > 0  # label smoothing makes the loss exceed the NLL
    assert "nrefs:1" in ev["bleu_signature"]
