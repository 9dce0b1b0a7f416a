"""Learning-rate schedules at known updates, alone and through LambdaLR + the trainer."""
import json
import math

import pytest
import torch

from mixnas.train import schedules
from train_toy import run


def test_inverse_sqrt_matches_fairseq_formula():
    lr, init_lr, warmup = 5e-4, 1e-7, 4000
    factor = schedules.inverse_sqrt(warmup, init_lr / lr)
    assert lr * factor(0) == pytest.approx(init_lr)
    assert lr * factor(1000) == pytest.approx(init_lr + 1000 * (lr - init_lr) / warmup)
    assert lr * factor(4000) == pytest.approx(lr)
    assert lr * factor(16000) == pytest.approx(lr * math.sqrt(4000) / math.sqrt(16000))  # 2.5e-4
    assert lr * factor(16000) == pytest.approx(2.5e-4)


def test_cosine_warmup_then_half_cosine_to_floor():
    factor = schedules.cosine(warmup_updates=10, total_updates=110, init_factor=0.0, min_factor=0.1)
    assert factor(0) == 0.0
    assert factor(5) == pytest.approx(0.5)
    assert factor(10) == pytest.approx(1.0)
    assert factor(60) == pytest.approx(0.1 + 0.9 * 0.5)
    assert factor(35) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi / 4)))
    assert factor(110) == pytest.approx(0.1)
    assert factor(500) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="max_updates"):
        schedules.cosine(warmup_updates=10, total_updates=10)


def test_lambdalr_applies_factor_of_update_index():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=1.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedules.inverse_sqrt(4, 0.0))
    used = []
    for _ in range(9):
        used.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert used == pytest.approx([0, 0.25, 0.5, 0.75, 1, math.sqrt(4 / 5), math.sqrt(4 / 6),
                                  math.sqrt(4 / 7), math.sqrt(4 / 8)])


def test_trainer_logs_the_rate_each_update_used(tmp_path):
    run(tmp_path, max_updates=8, checkpoint_every=0, lr=0.01, warmup_updates=4, warmup_init_lr=0.0)
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    lrs = [r["lr"] for r in records if r["kind"] == "train"]
    assert lrs == pytest.approx([0.01 * f for f in [0, 0.25, 0.5, 0.75, 1, math.sqrt(4 / 5),
                                                    math.sqrt(4 / 6), math.sqrt(4 / 7)]])
