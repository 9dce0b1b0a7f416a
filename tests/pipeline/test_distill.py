"""In-place distillation of the supernet (supernet.distill, with the sandwich rule)."""
import pytest
import torch
import torch.nn.functional as F

from mixnas.pipeline import (build_supernet, build_task, load_pipeline_config, load_space, sample_arch,
                             supernet_training_task, train_supernet)
from mixnas.pipeline.supernet_training import distillation_loss

DISTILL = ("supernet.sandwich=true", "supernet.distill=true")


def micro(tmp_path, *overrides):
    return load_pipeline_config("micro", [f"run_dir={tmp_path}", *overrides])


def test_smaller_sub_networks_learn_the_largest_ones_distribution(tmp_path):
    cfg = micro(tmp_path, *DISTILL)
    task, space = build_task(cfg), load_space(cfg)
    supernet = build_supernet(cfg, task, space)
    train_task = supernet_training_task(cfg, task, space, supernet)
    train_task.train_batches.set_epoch(1)
    batch = next(train_task.train_batches)
    loss, stats = train_task.loss(supernet, batch, 5)
    assert stats["sample_size"] == 3 * len(batch.labels)

    supernet.set_arch(space.largest())
    teacher_logits = supernet(batch.images)
    expected = F.cross_entropy(teacher_logits, batch.labels, reduction="sum")
    teacher = F.softmax(teacher_logits.detach(), dim=-1)
    for arch in (space.smallest(), sample_arch(space, cfg.seed, 5)):
        supernet.set_arch(arch)
        student = supernet(batch.images)
        # KL(teacher || student) per example, summed: sum_c p_t (log p_t - log p_s)
        expected = expected + (teacher * (teacher.log() - F.log_softmax(student, dim=-1))).sum()
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)

    # The teacher's output is detached: the KL terms send no gradient into the largest's pass,
    # so the gradient equals the one of CE(largest) plus the KL terms with a constant teacher.
    supernet.zero_grad()
    loss.backward()
    got = {n: p.grad.clone() for n, p in supernet.named_parameters() if p.grad is not None}
    supernet.zero_grad()
    expected.backward()
    want = {n: p.grad for n, p in supernet.named_parameters() if p.grad is not None}
    assert got.keys() == want.keys()
    assert all(torch.allclose(got[n], want[n], rtol=1e-4, atol=1e-6) for n in got)


def test_distillation_loss_masks_padding_positions():
    torch.manual_seed(0)
    student, teacher = torch.randn(2, 5, 7), torch.randn(2, 5, 7)
    mask = torch.tensor([[True] * 5, [True, True, True, False, False]])
    kl = F.kl_div(F.log_softmax(student, -1), F.log_softmax(teacher, -1), log_target=True, reduction="none").sum(-1)
    assert distillation_loss(student, teacher, mask).item() == pytest.approx(kl[mask].sum().item(), rel=1e-5)
    assert distillation_loss(student, student).item() == pytest.approx(0.0, abs=1e-5)


def test_distill_without_sandwich_is_refused():
    with pytest.raises(ValueError, match="supernet.distill needs supernet.sandwich: true") as error:
        load_pipeline_config("micro", ["supernet.distill=true"])
    assert "\n" not in str(error.value)


def test_distilled_training_runs_and_resumes_bit_identically(tmp_path):
    overrides = (*DISTILL, "supernet.train.max_updates=8", "supernet.train.checkpoint_every=4",
                 "supernet.train.validate_every=4", "supernet.train.keep_last=2")  # keep update 4's
    summary = train_supernet(micro(tmp_path / "ref", *overrides))
    assert summary["step"] == 8
    reference = torch.load(tmp_path / "ref/supernet/supernet.pt", weights_only=True)
    # Drop everything after the checkpoint of update 4: the rerun resumes from there.
    for name in ("checkpoint_00000008.pt", "supernet.pt", "summary.json"):
        (tmp_path / "ref/supernet" / name).unlink()
    assert (tmp_path / "ref/supernet/checkpoint_00000004.pt").is_file()
    assert train_supernet(micro(tmp_path / "ref", *overrides))["step"] == 8
    resumed = torch.load(tmp_path / "ref/supernet/supernet.pt", weights_only=True)
    assert all(torch.equal(reference[k], resumed[k]) for k in reference)
    # Distillation changes the training: not the weights of the sandwich rule alone.
    plain = train_supernet(micro(tmp_path / "plain", "supernet.sandwich=true", *overrides[2:]))
    assert plain["step"] == 8
    weights = torch.load(tmp_path / "plain/supernet/supernet.pt", weights_only=True)
    assert any(not torch.equal(reference[k], weights[k]) for k in reference)
