"""The trainer shared by translation, classification and supernet training.

    task = MyTask(...)                      # see mixnas.train.protocol for the contract
    with Trainer(task, TrainConfig(save_dir="runs/x", max_updates=1000)) as trainer:
        summary = trainer.train()

One update = `update_freq` micro-batches per rank: forward and backward each (loss summed over
its samples), sum gradients over ranks, divide by the total sample count, clip, optimizer
step, scheduler step. Checkpoints (atomic, rank 0) capture everything that determines the rest
of the run — weights, optimizer, scheduler, counters, the batch iterator's position and every
rank's RNG streams — so a run killed at any moment and resumed from its latest checkpoint
finishes bit-identical to one that was never interrupted (same world size and device).
"""
from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR
from tqdm import tqdm

from mixnas.errors import Interrupted
from mixnas.progress import bars_allowed, time_left
from mixnas.train import schedules
from mixnas.train.checkpoint import (FORMAT, atomic_torch_save, capture_rng_state, checkpoint_path,
                                     latest_checkpoint, load_checkpoint, prune_checkpoints,
                                     remove_stale_temporaries, restore_rng_state, seed_everything)
from mixnas.train.config import TrainConfig
from mixnas.train.distributed import (all_reduce_sum, barrier, broadcast_from_main, broadcast_module,
                                      cleanup, gather_to_main, init_distributed, sum_gradients)
from mixnas.train.metrics import MetricsLog
from mixnas.train.signals import StopSignals
from mixnas.train.protocol import check_task


class NonFiniteLossError(ValueError):
    """A NaN/inf loss or gradient norm; the message names the update."""


class Trainer:
    def __init__(self, task: Any, config: TrainConfig, label: str = ""):
        """`label` starts every progress line (e.g. 'retrain searched-mixed seed 2'): workers
        training side by side write to one log."""
        check_task(task)
        self.task, self.cfg, self.label = task, config, label
        self._owns_process_group = not torch.distributed.is_initialized()
        self.dist = init_distributed(config.device)
        self.device = self.dist.device
        self.model = task.model.to(self.device)
        broadcast_module(self.model, self.dist)
        self.batches = task.train_batches
        if self.dist.distributed:
            self.batches.shard(self.dist.rank, self.dist.world_size)
        self.optimizer = build_optimizer(self.model, config)
        self.scheduler = LambdaLR(self.optimizer, build_schedule(config))
        self.save_dir = Path(config.save_dir)
        self.log = MetricsLog(self.save_dir, config.tensorboard) if self.dist.is_main else None
        self.step, self.epoch, self.elapsed, self.skipped = 0, 1, 0.0, 0
        self.skipped_in_a_row = 0
        self.interval: dict[str, float] = defaultdict(float)  # sums since the last train record
        self.last_train: dict[str, Any] = {}
        self.grad_norm = 0.0  # of the latest update
        self.signals = StopSignals(lambda: f"stopped before update {self.step + 1} finished; run the same command "
                                           f"again to resume from the last checkpoint in {self.save_dir}")
        self.last_saved_step: int | None = None
        self._time_up = False  # agreed by all ranks at the last update
        self.finished_limits: list | None = None  # the limits a finished run reached (see train())
        self.stopped_by_task = False  # validate() asked to stop; a resumed run stays stopped
        self.last_valid: dict[str, Any] = {}
        self._lr = self.optimizer.param_groups[0]["lr"]  # rate used by the latest update
        try:
            self._resume_or_start()
        except BaseException:
            self.close()
            raise

    # --- public API ------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        """Train until a stopping limit; returns a summary (step, epoch, last metrics, checkpoint).

        SIGINT/SIGTERM during training finish the current update, write a checkpoint and raise
        `Interrupted` (a second signal abandons the update at once); rerunning resumes from
        that checkpoint bit-identically. A run resumed after it finished does nothing: no
        validation, no new log record, the summary of the finished run."""
        cfg = self.cfg
        if self.stopped_by_task or self.finished_limits == self._limits():
            return self._summary()
        bar = tqdm(total=cfg.max_updates or None, initial=self.step, unit="upd", dynamic_ncols=True,
                   disable=not (cfg.progress and self.dist.is_main and bars_allowed()))
        validated_at, tick, stop = None, time.monotonic(), False
        self._logged_elapsed = self.elapsed  # the progress line's rate counts this run's time only
        with self.signals, contextlib.closing(bar):
            while not stop:
                if signum := self.signals.requested(self.dist.distributed):
                    self._interrupt(signum)
                micro = self._next_micro_batches()
                if not micro:  # the epoch is over
                    if cfg.validate_every_epoch and validated_at != self.step:
                        stop = self._validate_and_check_stop()
                        validated_at = self.step
                    if stop or (cfg.max_epochs and self.epoch >= cfg.max_epochs):
                        break
                    self.epoch += 1
                    self.batches.set_epoch(self.epoch)
                    continue
                now = time.monotonic()
                self.elapsed += now - tick
                tick = now
                result = self._update(micro)
                if result is None:  # skipped (non-finite) or empty update
                    stop = self._limit_reached()
                    continue
                sums, self.grad_norm = result
                for key, value in sums.items():
                    self.interval[key] += value
                self.interval["updates"] += 1
                bar.update(1)
                if self.step % cfg.log_every == 0:
                    self._log_train(bar)
                if cfg.validate_every and self.step % cfg.validate_every == 0:
                    stop = self._validate_and_check_stop()
                    validated_at = self.step
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save_checkpoint()
                stop = stop or self._limit_reached()
            self.elapsed += time.monotonic() - tick
            if self.interval.get("updates"):
                self._log_train(bar)
            if validated_at != self.step:
                self._validate()
            # The final checkpoint records that the run finished (and a task's stop request), so a
            # rerun with the same limits returns this summary without touching any file.
            self.finished_limits = self._limits()
            self.save_checkpoint()
        return self._summary()

    def _limits(self) -> list:
        return [self.cfg.max_updates, self.cfg.max_epochs, self.cfg.max_time]

    def _summary(self) -> dict[str, Any]:
        return {"step": self.step, "epoch": self.epoch, "skipped_updates": self.skipped,
                "train": self.last_train, "valid": self.last_valid,
                "checkpoint": str(checkpoint_path(self.save_dir, self.step))}

    def _interrupt(self, signum: int) -> None:
        if self.last_saved_step != self.step:
            self.save_checkpoint()
        raise Interrupted(signum, f"stopped by {signal.Signals(signum).name} after update {self.step}; checkpoint "
                                  f"{checkpoint_path(self.save_dir, self.step)} written; run the same command "
                                  f"again to resume")

    def save_checkpoint(self) -> Path:
        """Write checkpoint_{step}.pt (rank 0, atomically); every rank must call it."""
        rng = gather_to_main(capture_rng_state(), self.dist)
        path = checkpoint_path(self.save_dir, self.step)
        if self.dist.is_main:
            state = {
                "format": FORMAT, "version": 1, "step": self.step, "epoch": self.epoch,
                "world_size": self.dist.world_size, "elapsed": self.elapsed, "skipped": self.skipped,
                "stopped_by_task": self.stopped_by_task, "skipped_in_a_row": self.skipped_in_a_row,
                "interval": dict(self.interval), "grad_norm": self.grad_norm, "last_train": self.last_train, "last_valid": self.last_valid,
                "finished_limits": self.finished_limits,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(), "batches": self.batches.state_dict(),
                "rng": rng, "config": self.cfg.to_dict(),
                "task": self.task.state_dict() if hasattr(self.task, "state_dict") else {},
            }
            atomic_torch_save(state, path)
            prune_checkpoints(self.save_dir, self.cfg.keep_last, self.cfg.keep_weights)
        barrier(self.dist)  # nobody runs ahead (or exits) before the file is complete
        self.last_saved_step = self.step
        return path

    def close(self) -> None:
        if self.log is not None:
            self.log.close()
        if self._owns_process_group:
            cleanup(self.dist)

    def __enter__(self) -> "Trainer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- one update --------------------------------------------------------------------------
    def _next_micro_batches(self) -> list[Any]:
        micro = []
        for _ in range(self.cfg.update_freq):
            try:
                micro.append(next(self.batches))
            except StopIteration:
                break
        return micro

    def _update(self, micro: list[Any]) -> tuple[dict[str, float], float] | None:
        self.model.train()
        sums: dict[str, float] = defaultdict(float)
        bad_batch = None
        for index, batch in enumerate(micro):
            batch = move_to_device(batch, self.device)
            with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.cfg.bf16):
                loss, stats = self.task.loss(self.model, batch, self.step)
            if not isinstance(loss, torch.Tensor) or loss.dim() != 0:
                raise ValueError(f"{type(self.task).__name__}.loss must return a scalar tensor "
                                 f"(the summed loss) first, got {getattr(loss, 'shape', type(loss))}")
            if "sample_size" not in stats:
                raise ValueError(f"{type(self.task).__name__}.loss must return stats with a "
                                 f"'sample_size' entry (the number of samples the loss sums over)")
            value = float(loss.detach())
            if not math.isfinite(value):
                bad_batch = bad_batch or (index, value)
                continue  # no backward: keep NaN out of the gradients
            loss.backward()
            sums["loss"] += value
            for key, stat in stats.items():
                sums[key] += float(stat)
        # One collective for all counters: stats, the non-finite flag, and the time limit.
        keys = sorted(sums.keys() | {"loss", "sample_size"})
        time_up = bool(self.cfg.max_time and self.elapsed >= self.cfg.max_time)
        local = [sums[k] for k in keys] + self.signals.flags() + [float(bad_batch is not None), float(time_up)]
        total = all_reduce_sum(torch.tensor(local, dtype=torch.float64, device=self.device), self.dist)
        total = total.tolist()
        sums = dict(zip(keys, total[:len(keys)]))
        any_bad, self._time_up = total[-2] > 0, total[-1] > 0
        self.signals.agree(total[-4:-2])
        if any_bad:
            where = (f"micro-batch {bad_batch[0]} gave loss {bad_batch[1]}" if bad_batch
                     else "another rank saw it")
            return self._non_finite(f"non-finite loss at update {self.step + 1} (epoch {self.epoch}; "
                                    f"{where})")
        params = [p for p in self.model.parameters() if p.requires_grad]
        sum_gradients(params, self.dist)
        if sums["sample_size"] <= 0:
            self.optimizer.zero_grad(set_to_none=True)
            return None
        grads = [p for p in params if p.grad is not None]
        for p in grads:
            p.grad.div_(sums["sample_size"])
        max_norm = self.cfg.clip_norm if self.cfg.clip_norm > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(grads, max_norm)) if grads else 0.0
        if not math.isfinite(grad_norm):
            return self._non_finite(f"non-finite gradient norm at update {self.step + 1} "
                                    f"(epoch {self.epoch}; loss was {sums['loss']})")
        self._lr = self.optimizer.param_groups[0]["lr"]  # the rate this update used
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.skipped_in_a_row = 0
        return sums, grad_norm

    def _non_finite(self, message: str) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        if not self.cfg.skip_nonfinite:
            raise NonFiniteLossError(f"{message}; lower lr, set clip_norm, check the data, or set "
                                     f"skip_nonfinite=true to skip such updates")
        self.skipped += 1
        self.skipped_in_a_row += 1
        if self.log is not None:
            self.log.write("skip", self.step, {"reason": message, "skipped_updates": self.skipped})
        if self.skipped_in_a_row > self.cfg.max_skips_in_a_row:
            # Skipped updates do not advance the step, so a diverged run would skip forever.
            raise NonFiniteLossError(f"{self.skipped_in_a_row} updates in a row were skipped (last: {message}); "
                                     f"the run has diverged: lower lr, set clip_norm or check the data "
                                     f"(train.max_skips_in_a_row bounds this)")
        return None

    # --- stopping, logging, validation, resuming ------------------------------------------------
    def _limit_reached(self) -> bool:
        return bool(self._time_up or (self.cfg.max_updates and self.step >= self.cfg.max_updates))

    def _log_train(self, bar: tqdm) -> dict[str, Any]:
        interval, self.interval = self.interval, defaultdict(float)
        sums = {k: v for k, v in interval.items() if k != "updates"}
        if hasattr(self.task, "reduce_metrics"):
            metrics = dict(self.task.reduce_metrics(sums))
        else:
            metrics = {"loss": sums["loss"] / max(sums["sample_size"], 1e-12)}
        metrics.update(epoch=self.epoch, lr=self._lr,
                       grad_norm=self.grad_norm, sample_size=sums["sample_size"],
                       updates=int(interval["updates"]), elapsed=round(self.elapsed, 3))
        if self.log is not None:
            self.log.write("train", self.step, metrics)
            bar.set_postfix(loss=f"{metrics.get('loss', float('nan')):.4g}", lr=f"{metrics['lr']:.3g}")
            if bar.disable and self.cfg.progress:  # not a terminal (a log file, a pipe): one line instead
                print(self._progress_line(metrics), file=sys.stderr, flush=True)
        self.last_train = metrics
        return metrics

    def _progress_line(self, metrics: dict[str, Any]) -> str:
        """'update 500/2000 (25%): loss 2.31, lr 0.00091, 8.2 updates/s, ~3.0 min left'."""
        seconds = self.elapsed - self._logged_elapsed
        self._logged_elapsed = self.elapsed
        rate = metrics["updates"] / seconds if seconds > 0 else float("nan")
        total = self.cfg.max_updates
        where = f"update {self.step}/{total} ({self.step / total:.0%})" if total else f"update {self.step}"
        left = ""
        if total and self.step < total and rate == rate and rate > 0:
            left = f", {time_left((total - self.step) / rate)}"
        shown = ", ".join(f"{k} {v:.4g}" for k, v in metrics.items()
                          if k not in ("epoch", "lr", "grad_norm", "sample_size", "updates", "elapsed")
                          and isinstance(v, (int, float)))
        label = f"{self.label}: " if self.label else ""
        return f"{label}{where}: {shown}, lr {metrics['lr']:.2g}, {rate:.3g} updates/s{left}"

    def _validate_and_check_stop(self) -> bool:
        self.stopped_by_task = bool(self._validate().get("stop"))
        return self.stopped_by_task

    def _validate(self) -> dict[str, Any]:
        if not hasattr(self.task, "validate"):
            return {}
        metrics = None
        if self.dist.is_main:
            saved = capture_rng_state()  # validation must not shift the training RNG streams
            self.model.eval()
            try:
                with torch.no_grad(), torch.autocast(self.device.type, dtype=torch.bfloat16,
                                                     enabled=self.cfg.bf16):
                    metrics = dict(self.task.validate(self.model))
            finally:
                self.model.train()
                restore_rng_state(saved)
            self.log.write("valid", self.step, metrics)
        self.last_valid = broadcast_from_main(metrics, self.dist)
        return self.last_valid

    def _resume_or_start(self) -> None:
        resume = self.cfg.resume
        if resume == "auto":
            path = latest_checkpoint(self.save_dir)
        elif resume in ("none", ""):
            path = None
        else:
            path = Path(resume)
        if self.dist.is_main:
            remove_stale_temporaries(self.save_dir)
        if path is None:
            if resume in ("none", "") and latest_checkpoint(self.save_dir) is not None:
                raise ValueError(f"{self.save_dir} already holds checkpoints of another run; use "
                                 f"resume=auto to continue it or choose another save_dir")
            seed_everything(self.cfg.seed + self.dist.rank)
            self.batches.set_epoch(1)
            if self.log is not None:
                self.log.truncate_after(0)
            return
        ckpt = load_checkpoint(path)  # on CPU; load_state_dict moves tensors to the device
        if ckpt["world_size"] != self.dist.world_size:
            raise ValueError(f"{path} was written by {ckpt['world_size']} process(es) but this run has "
                             f"{self.dist.world_size}; resume with the same number of processes")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.scheduler.load_state_dict(ckpt["scheduler"])
        self.batches.load_state_dict(ckpt["batches"])
        if ckpt["task"] and hasattr(self.task, "load_state_dict"):
            self.task.load_state_dict(ckpt["task"])
        self.step, self.epoch = ckpt["step"], ckpt["epoch"]
        self.elapsed, self.skipped = ckpt["elapsed"], ckpt["skipped"]
        self.stopped_by_task = ckpt["stopped_by_task"]
        # Written since the run-directory safety work; older checkpoints resume without them.
        self.skipped_in_a_row = ckpt.get("skipped_in_a_row", 0)
        self.interval = defaultdict(float, ckpt.get("interval", {}))
        self.last_train, self.last_valid = ckpt.get("last_train", {}), ckpt.get("last_valid", {})
        self.finished_limits = ckpt.get("finished_limits")
        self.grad_norm = ckpt.get("grad_norm", 0.0)
        self.last_saved_step = self.step
        restore_rng_state(ckpt["rng"][self.dist.rank])
        if self.log is not None:
            self.log.truncate_after(self.step)


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("the model has no trainable parameters")
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    kind = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    # foreach: the multi-tensor update, a few kernels per group instead of several per parameter
    # (torch's default on CPU is the per-parameter loop): the optimizer step of the 68-tensor
    # shakespeare_char model takes 6 ms instead of 16 ms on one CPU thread.
    return kind(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.adam_eps, foreach=True)


def build_schedule(cfg: TrainConfig) -> schedules.Schedule:
    init = cfg.warmup_init_lr / cfg.lr
    if cfg.lr_scheduler == "inverse_sqrt":
        return schedules.inverse_sqrt(cfg.warmup_updates, init)
    if cfg.lr_scheduler == "cosine":
        return schedules.cosine(cfg.warmup_updates, cfg.max_updates, init, cfg.min_lr / cfg.lr)
    return schedules.constant(cfg.warmup_updates, init)


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Tensors, also inside dicts, lists and tuples, moved to `device`; anything else unchanged."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: move_to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        moved = [move_to_device(v, device) for v in batch]
        return type(batch)(*moved) if hasattr(batch, "_fields") else type(batch)(moved)
    return batch
