"""Trainer behaviour: non-finite losses, accumulation, bf16, stopping, logging, bad input."""
import json

import pytest

from mixnas.dataconf import ConfigError, apply_overrides, from_dict
import torch

from mixnas.train import EpochBatches, NonFiniteLossError, TrainConfig, Trainer, load_checkpoint
from train_toy import ToyTask, run


def _records(save_dir, kind):
    lines = (save_dir / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["kind"] == kind]


def _params(save_dir, step):
    return load_checkpoint(save_dir / f"checkpoint_{step:08d}.pt")["model"]


def test_nan_loss_fails_naming_the_update(tmp_path):
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at update 6 \(epoch 1; micro-batch 0 "
                                                 r"gave loss nan\).*skip_nonfinite") as err:
        run(tmp_path, max_updates=10, nan_at_call=6)
    assert "\n" not in str(err.value)
    assert load_checkpoint(tmp_path / "checkpoint_00000004.pt")["step"] == 4


def test_nan_gradient_fails_naming_the_update(tmp_path):
    with pytest.raises(NonFiniteLossError, match="non-finite gradient norm at update 3"):
        run(tmp_path, max_updates=10, bad_grad_at_call=3)


def test_skip_nonfinite_drops_the_update_and_goes_on(tmp_path):
    summary = run(tmp_path, max_updates=8, nan_at_call=3, skip_nonfinite=True)
    assert summary["step"] == 8 and summary["skipped_updates"] == 1
    skips = _records(tmp_path, "skip")
    assert len(skips) == 1 and "update 3" in skips[0]["reason"]
    assert all(torch.isfinite(v).all() for v in _params(tmp_path, 8).values())


def test_gradient_accumulation_equals_the_large_batch(tmp_path):
    run(tmp_path / "big", max_updates=10, batch_size=8, update_freq=1)
    run(tmp_path / "accumulated", max_updates=10, batch_size=4, update_freq=2)
    big, accumulated = _params(tmp_path / "big", 10), _params(tmp_path / "accumulated", 10)
    for key in big:
        assert torch.allclose(big[key], accumulated[key], atol=1e-6), key


def test_bf16_autocast_runs_the_model_in_bf16(tmp_path):
    summary = run(tmp_path, max_updates=4, bf16=True)
    assert summary["task"].logits_dtypes == {torch.bfloat16}
    assert all(v.dtype == torch.float32 for v in _params(tmp_path, 4).values())
    losses = torch.tensor([r["loss"] for r in _records(tmp_path, "train")])
    assert torch.isfinite(losses).all()


def test_validation_does_not_perturb_training(tmp_path):
    # The toy's validate() draws random numbers; the trainer must isolate them.
    run(tmp_path / "often", max_updates=9, dropout=0.3, validate_every=2)
    run(tmp_path / "never", max_updates=9, dropout=0.3, validate_every=0)
    often, never = _params(tmp_path / "often", 9), _params(tmp_path / "never", 9)
    assert all(torch.equal(often[k], never[k]) for k in often)
    assert [r["step"] for r in _records(tmp_path / "often", "valid")] == [2, 4, 6, 8, 9]


def test_stopping_by_epochs_time_and_task_request(tmp_path):
    # 96 examples / 8 per batch = 12 updates per epoch
    by_epochs = run(tmp_path / "epochs", max_updates=0, max_epochs=2, checkpoint_every=0)
    assert (by_epochs["step"], by_epochs["epoch"]) == (24, 2)
    by_time = run(tmp_path / "time", max_updates=0, max_time=1e-9, checkpoint_every=0)
    assert by_time["step"] == 1

    class StopsEarly(ToyTask):
        def validate(self, model):
            return {"stop": 1}

    asked = run(tmp_path / "asked", max_updates=50, validate_every=5, task_class=StopsEarly)
    assert asked["step"] == 5 and (tmp_path / "asked" / "checkpoint_00000005.pt").exists()
    again = run(tmp_path / "asked", max_updates=50, validate_every=5, task_class=StopsEarly)
    assert again["step"] == 5  # the stop request survives a resume

    class StopsAfterSecondEpoch(ToyTask):
        def validate(self, model):
            self.validations = getattr(self, "validations", 0) + 1
            return {"stop": int(self.validations == 2)}

    per_epoch = run(tmp_path / "per_epoch", max_updates=100, validate_every=0,
                    validate_every_epoch=True, task_class=StopsAfterSecondEpoch)
    assert per_epoch["step"] == 24
    assert [r["step"] for r in _records(tmp_path / "per_epoch", "valid")] == [12, 24]


def test_metrics_log_and_tensorboard(tmp_path):
    run(tmp_path, max_updates=4, checkpoint_every=0, log_every=2, tensorboard=True)
    train = _records(tmp_path, "train")
    assert [r["step"] for r in train] == [2, 4]
    assert {"loss", "accuracy", "lr", "grad_norm", "epoch", "sample_size"} <= train[0].keys()
    assert train[0]["sample_size"] == 16  # summed over the 2 updates of the interval
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_config_errors_are_one_line_and_name_the_fix():
    """TrainConfig is loaded by the one typed loader (mixnas.dataconf.from_dict) like every section."""
    with pytest.raises(ConfigError, match=r"train: unknown key 'lrr'"):
        from_dict(TrainConfig, {"lrr": 1.0, "max_updates": 3}, "train")
    with pytest.raises(ValueError, match="never stops"):
        TrainConfig()
    with pytest.raises(ValueError, match="cosine schedule needs max_updates"):
        TrainConfig(lr_scheduler="cosine", max_epochs=3)
    with pytest.raises(ValueError, match="optimizer must be one of"):
        TrainConfig(optimizer="sgd", max_updates=3)
    cfg = from_dict(TrainConfig, {"betas": [0.9, 0.999], "max_updates": 3}, "train")
    assert cfg.betas == (0.9, 0.999)
    cfg = from_dict(TrainConfig, apply_overrides({}, ["lr=1e-3", "max_updates=7", "bf16=true", "betas=[0.9, 0.98]"]),
                    "train")
    assert (cfg.lr, cfg.max_updates, cfg.bf16, cfg.betas) == (1e-3, 7, True, (0.9, 0.98))
    with pytest.raises(ConfigError, match="train.lr: expected a number, got 'fast'"):
        from_dict(TrainConfig, {"lr": "fast", "max_updates": 3}, "train")


def test_bad_tasks_and_bad_resumes_are_refused(tmp_path):
    class NoCount(ToyTask):
        def loss(self, model, batch, step):
            return super().loss(model, batch, step)[0], {}

    with pytest.raises(ValueError, match="sample_size"):
        run(tmp_path / "nocount", max_updates=2, task_class=NoCount)
    with pytest.raises(ValueError, match="lacks"):
        Trainer(object(), TrainConfig(max_updates=1, save_dir=str(tmp_path / "x")))

    run(tmp_path / "done", max_updates=2, checkpoint_every=0)
    with pytest.raises(ValueError, match="already holds checkpoints"):
        run(tmp_path / "done", max_updates=4, resume="none")
    path = tmp_path / "done" / "checkpoint_00000002.pt"
    ckpt = load_checkpoint(path)
    torch.save({**ckpt, "world_size": 2, "rng": ckpt["rng"] * 2}, path)  # as two processes write it
    with pytest.raises(ValueError, match="written by 2 process"):
        run(tmp_path / "done", max_updates=4)


def test_adamw_decays_matrices_only(tmp_path):
    task = ToyTask()
    cfg = TrainConfig(save_dir=str(tmp_path), max_updates=1, optimizer="adamw", weight_decay=0.1,
                      tensorboard=False, device="cpu")
    with Trainer(task, cfg) as trainer:
        groups = trainer.optimizer.param_groups
    assert isinstance(trainer.optimizer, torch.optim.AdamW)
    assert [g["weight_decay"] for g in groups] == [0.1, 0.0]
    assert all(p.dim() == 2 for p in groups[0]["params"]) and all(p.dim() == 1 for p in groups[1]["params"])


def test_epoch_batches_shard_resume_and_reshuffle():
    full = EpochBatches.over_examples(10, 2, seed=5)
    full.set_epoch(1)
    epoch1 = list(full)
    assert sorted(i for b in epoch1 for i in b) == list(range(10))
    full.set_epoch(2)
    assert list(full) != epoch1  # a new order each epoch

    shards = []
    for rank in range(2):
        it = EpochBatches.over_examples(10, 2, seed=5)
        it.shard(rank, 2)
        it.set_epoch(1)
        shards.append(list(it))
    assert shards == [epoch1[0:4:2], epoch1[1:4:2]]  # 5 batches: each rank gets 2, one left out

    it = EpochBatches.over_examples(10, 2, seed=5)
    it.set_epoch(1)
    next(it), next(it)
    state = it.state_dict()
    resumed = EpochBatches.over_examples(10, 2, seed=5)
    resumed.load_state_dict(state)
    assert list(resumed) == epoch1[2:]

    with pytest.raises(ValueError, match="fewer than the 4 ranks"):
        small = EpochBatches.over_batches([[0], [1]], seed=0)
        small.shard(0, 4)
        next(small)
    with pytest.raises(ValueError, match="empty"):
        EpochBatches.over_batches([], seed=0)
