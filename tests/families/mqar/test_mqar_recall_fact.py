"""The known fact at micro scale (Zoology, Arora et al. 2023): softmax attention solves
associative recall, linear attention (here elu + 1 features) of the same size does not.

Setting: the mqar_softmax / mqar_linear presets (16-token vocabulary, 16 tokens, 2 pairs and 2
queries; 2 layers of width 64, 2 heads of 32), 1000 AdamW updates of 128 examples through the
trainer. Measured on one thread: softmax sits at 0.5 (one of the two pair values) until the
recall circuit forms, then jumps to 1.0; when varies with the seed (with 1,000 updates: seed 1
1.000 vs linear 0.508, seed 2 0.999 vs 0.495; seed 1 was still at 0.5 after 500). The
all-linear model stays at ~0.5 (it answers with a pair value, unable to say which). The suite
runs one seed through `mixnas train`'s code path with 700 updates, about a minute: marked slow.
"""
import pytest
import torch

from mixnas.commands.train import train_experiment
from mixnas.experiment import load_experiment

UPDATES = 700


def recall_accuracy(preset: str, seed: int, save_dir) -> float:
    """Test accuracy after `mixnas train --config PRESET` with a budget of UPDATES updates."""
    exp = load_experiment(preset, [f"train.save_dir={save_dir}", f"train.seed={seed}", f"train.max_updates={UPDATES}",
                                   f"train.checkpoint_every={UPDATES}", "train.validate_every=0",
                                   "train.progress=false", "train.tensorboard=false",
                                   "data.val_examples=100", "data.test_examples=500"])
    return train_experiment(exp)["eval"]["accuracy"]


@pytest.mark.slow
def test_softmax_recalls_where_linear_attention_does_not(tmp_path):
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        softmax = recall_accuracy("mqar_softmax", 2, tmp_path / "softmax")
        linear = recall_accuracy("mqar_linear", 2, tmp_path / "linear")
    finally:
        torch.set_num_threads(threads)
    assert softmax >= 0.9 and linear <= 0.6, (softmax, linear)
