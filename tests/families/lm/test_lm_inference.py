"""`mixnas.load(dir).generate` is what `mixnas sample` prints; a LM directory needs no asset."""
import json

import pytest
import torch

import mixnas
from mixnas.cli import main
from mixnas.families.lm.model import LM
from mixnas.models import save_model
from lm_helpers import uniform_arch, write_text


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("lm")
    task = mixnas.build_task("language-modeling", {"dir": str(write_text(root / "text", chars=3000)), "context": 16})
    torch.manual_seed(0)
    model = LM(uniform_arch("cosformer", depth=1), task.model_config({}))
    return save_model(model, root / "model", task=task)


def test_generate_equals_sample_command(model_dir, capsys):
    meta = json.loads((model_dir / "model.json").read_text())
    assert meta["family"] == "lm" and meta["task"] == "language-modeling" and meta["test_metric"] == "loss"
    assert {p.name for p in model_dir.iterdir()} == {"arch.yaml", "model.pt", "model.json"}  # nothing else needed
    generator = mixnas.load(model_dir)
    for prompt, options, argv in (("ROMEO:", dict(tokens=40, temperature=0.8, top_k=5, seed=3),
                                   ["--prompt", "ROMEO:", "--tokens", "40", "--temperature", "0.8", "--top-k", "5",
                                    "--seed", "3"]),
                                  (None, dict(tokens=30), ["--tokens", "30"])):
        text = generator.generate(prompt, **options)
        assert main(["sample", "--model", str(model_dir), *argv]) == 0
        assert capsys.readouterr().out == text + "\n"
    assert text.startswith("\n") and len(text) == 31  # the default prompt: a newline
    assert generator.generate("ROMEO:", tokens=20, seed=1) == generator.generate("ROMEO:", tokens=20, seed=1)


def test_generate_errors(model_dir, tmp_path, capsys):
    generator = mixnas.load(model_dir)
    with pytest.raises(ValueError, match="tokens must be >= 0"):
        generator.generate("A", tokens=-1)
    with pytest.raises(ValueError, match="not in the model"):
        generator.generate("é")
    assert main(["sample", "--model", str(model_dir), "--top-k", "0"]) == 2
    assert "top_k must be >= 1" in capsys.readouterr().err
