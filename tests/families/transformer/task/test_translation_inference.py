"""A trained translation model's directory is self-contained: `mixnas.load(dir).translate` and
`mixnas translate` work after the run directory and the SentencePiece cache are gone, and give
what the task's own beam search gives on the task's own source batch."""
import dataclasses
import io
import json
import shutil
import sys

import pytest
import torch
import yaml

import mixnas
from mixnas.cli import main
from mixnas.families.transformer.task.batching import collate
from mixnas.families.transformer.task.beam import translate as beam_translate
from mixnas.families.transformer.task.task import TranslationTask, TranslationTaskConfig
from mixnas.models import load_model, save_model
from translation_toy import write_corpus

ARCH = {"type": "transformer", "encoder_embed_dim": 16, "decoder_embed_dim": 16, "qkv_dim": 16,
        "encoder_layers": [{"ffn_dim": 32, "heads": 2, "attention": "cosformer"}],
        "decoder_layers": [{"ffn_dim": 32, "heads": 2, "attention": "softmax", "cross_heads": 2,
                            "cross_attention": "cosformer", "cross_layers": 1}]}
N = 6  # test sentences compared


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(moved model dir, moved run dir, reference translations at beam 1 and 4, sentences, src)."""
    root = tmp_path_factory.mktemp("translation")
    data, cache, run = write_corpus(root / "data"), root / "cache", root / "run"
    (root / "arch.yaml").write_text(yaml.safe_dump(ARCH))
    assert main(["train", "--config", "multi30k_transformer", f"data.dir={data}", "data.vocab_size=48",
                 f"data.cache_dir={cache}", "data.max_tokens=512", "data.beam.lenpen=1.0",
                 f"model.arch={root / 'arch.yaml'}", "model.config.dropout=0.0", f"train.save_dir={run}",
                 "train.max_updates=8", "train.warmup_updates=2", "train.checkpoint_every=4",
                 "train.validate_every=0", "train.tensorboard=false", "train.progress=false",
                 "eval.average_last=1", "eval.limit=8"]) == 0
    # The reference: the task's own encoded test batch, the task's beam search, its tokenizer.
    task = TranslationTask(TranslationTaskConfig(dir=str(data), vocab_size=48, cache_dir=str(cache)))
    sentences = task.data.raw("test")[0][:N]
    src = collate(task.data.split("test"), torch.arange(N)).src
    model = load_model(run / "model").eval()
    beam = dataclasses.replace(task.config.beam, lenpen=1.0)
    refs = {b: [task.data.tokenizer.decode(t) for t in beam_translate(model, src, dataclasses.replace(beam, beam=b))]
            for b in (1, 4)}
    # Move the run away, then remove the original run, the data and the tokenizer cache.
    moved = root / "elsewhere" / "run"
    shutil.copytree(run, moved)
    for d in (run, cache, data):
        shutil.rmtree(d)
    return moved / "model", moved, refs, sentences, src


@pytest.fixture(autouse=True)
def no_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MIXNAS_CACHE", str(tmp_path / "empty-cache"))
    yield
    assert not (tmp_path / "empty-cache").exists()  # using a model never touches the cache


def test_model_dir_holds_tokenizer_and_metadata(trained):
    model_dir = trained[0]
    assert {"arch.yaml", "model.pt", "spm.model", "preprocessing.json", "model.json"} <= {
        p.name for p in model_dir.iterdir()}
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["family"] == "transformer" and meta["task"] == "translation" and meta["test_metric"] == "bleu"
    assert meta["eval"]["split"] == "test" and "bleu" in meta["eval"]
    assert meta["command"].startswith("mixnas train --config multi30k_transformer ")
    assert meta["mixnas_version"] == mixnas.__version__
    assert meta["git_commit"] is None or len(meta["git_commit"]) == 40
    prep = json.loads((model_dir / "preprocessing.json").read_text())
    assert prep["beam"]["lenpen"] == 1.0 and prep["vocab_size"] == 48


def test_load_translate_equals_task_beam_search(trained):
    model_dir, run_dir, refs, sentences, src = trained
    translator = mixnas.load(model_dir)
    assert translator.beam.lenpen == 1.0  # the beam settings the task trained with
    assert torch.equal(translator.encode(sentences), src)  # EOS and padding as the task's batches
    assert translator.translate(sentences, beam=1) == refs[1]
    assert translator.translate(sentences) == refs[4]  # the saved beam (4)
    assert mixnas.load(run_dir).translate(sentences[:1], beam=4) == refs[4][:1]  # a run dir works too
    assert translator.translate([]) == []


def test_translate_command(trained, monkeypatch, capsys, tmp_path):
    model_dir, run_dir, refs, sentences, _ = trained
    monkeypatch.setattr(sys, "stdin", io.StringIO("".join(s + "\n" for s in sentences)))
    assert main(["translate", "--model", str(model_dir), "--beam", "1"]) == 0
    assert capsys.readouterr().out.splitlines() == refs[1]
    (tmp_path / "in.en").write_text("".join(s + "\r\n" for s in sentences), encoding="utf-8")
    assert main(["translate", "--model", str(run_dir), "--input", str(tmp_path / "in.en"),
                 "--output", str(tmp_path / "out.de"), "--batch-size", "8"]) == 0
    assert (tmp_path / "out.de").read_text(encoding="utf-8").splitlines() == refs[4]


def test_missing_assets_and_bad_options_are_one_line(trained, tmp_path, capsys):
    bare = save_model(load_model(trained[0]), tmp_path / "bare")  # no task: weights only
    with pytest.raises(ValueError, match=r"preprocessing.json does not exist.*retrain.*task"):
        mixnas.load(bare)
    for argv, message in ((["--model", str(bare)], "preprocessing.json does not exist"),
                          (["--model", str(trained[0]), "--beam", "0"], "beam must be >= 1"),
                          (["--model", str(tmp_path / "nothing")], "does not exist")):
        assert main(["translate", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1
    shutil.copytree(trained[0], tmp_path / "nospm")
    (tmp_path / "nospm" / "spm.model").unlink()
    with pytest.raises(ValueError, match=r"spm.model does not exist.*save_model\(model, directory, task=task\)"):
        mixnas.load(tmp_path / "nospm")
