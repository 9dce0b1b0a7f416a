"""`TrainConfig`: every knob of the trainer, validated on construction."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

OPTIMIZERS = ("adam", "adamw")
SCHEDULES = ("inverse_sqrt", "cosine", "constant")


@dataclass
class TrainConfig:
    save_dir: str = "runs/train"      # checkpoints, metrics.jsonl, tensorboard/
    seed: int = 1                      # training RNG streams are seeded with seed + rank

    # optimisation (defaults follow fairseq/HAT's Transformer recipe)
    optimizer: str = "adam"            # "adam" | "adamw" (decoupled weight decay)
    lr: float = 5e-4                   # peak learning rate
    betas: tuple[float, float] = (0.9, 0.98)
    adam_eps: float = 1e-8
    weight_decay: float = 0.0          # applied to matrices/embeddings only, never to biases/norms
    lr_scheduler: str = "inverse_sqrt"  # "inverse_sqrt" | "cosine" | "constant"
    warmup_updates: int = 4000
    warmup_init_lr: float = 1e-7       # rate at update 0, ramping linearly to lr
    min_lr: float = 0.0                # floor of the cosine schedule
    clip_norm: float = 0.0             # max global gradient norm; 0 disables clipping
    update_freq: int = 1               # micro-batches accumulated per update (per rank)

    # stopping: whichever limit comes first (at least one must be set)
    max_updates: int = 0
    max_epochs: int = 0
    max_time: float = 0.0              # seconds of training, summed over resumed runs

    # checkpoints
    checkpoint_every: int = 1000       # updates; a final checkpoint is always written
    keep_last: int = 1                 # newest full checkpoints kept (resume needs 1); 0 keeps all
    keep_weights: int = 0              # newest snapshots whose weights stay for averaging (weights_*.pt)
    resume: str = "auto"               # "auto" (latest in save_dir, if any) | "none" | a path

    # numerics
    device: str = "auto"               # "auto" | "cpu" | "cuda" (cuda:LOCAL_RANK under torchrun)
    bf16: bool = False                 # bf16 autocast for the loss computation
    skip_nonfinite: bool = False       # skip updates with NaN/inf loss or gradient instead of failing
    max_skips_in_a_row: int = 10       # with skip_nonfinite: stop (exit 2) after more skips in a row

    # logging and validation
    log_every: int = 100               # updates between metric records
    validate_every: int = 0            # updates between task.validate calls; 0: only at the end
    validate_every_epoch: bool = False  # also validate at the end of every epoch
    progress: bool = True              # tqdm bar (only on rank 0 and when stderr is a terminal)
    tensorboard: bool = True

    extra: dict[str, Any] = field(default_factory=dict)  # free-form, stored in checkpoints

    def __post_init__(self) -> None:
        self.betas = tuple(float(b) for b in self.betas)  # YAML gives lists
        checks = [
            (self.optimizer in OPTIMIZERS, f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}"),
            (self.lr_scheduler in SCHEDULES, f"lr_scheduler must be one of {SCHEDULES}, got {self.lr_scheduler!r}"),
            (self.lr > 0, f"lr must be > 0, got {self.lr}"),
            (len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), f"betas must be two numbers in [0, 1), got {self.betas}"),
            (0 <= self.warmup_init_lr <= self.lr, f"warmup_init_lr must be in [0, lr], got {self.warmup_init_lr}"),
            (0 <= self.min_lr <= self.lr, f"min_lr must be in [0, lr], got {self.min_lr}"),
            (self.warmup_updates >= 0, f"warmup_updates must be >= 0, got {self.warmup_updates}"),
            (self.clip_norm >= 0, f"clip_norm must be >= 0 (0 disables), got {self.clip_norm}"),
            (self.update_freq >= 1, f"update_freq must be >= 1, got {self.update_freq}"),
            (min(self.max_updates, self.max_epochs, self.max_time) >= 0, "max_updates, max_epochs and max_time must be >= 0"),
            (self.max_updates or self.max_epochs or self.max_time, "set max_updates, max_epochs or max_time, else training never stops"),
            (self.lr_scheduler != "cosine" or self.max_updates > self.warmup_updates,
             f"the cosine schedule needs max_updates > warmup_updates ({self.warmup_updates}), got {self.max_updates}"),
            (min(self.checkpoint_every, self.keep_last, self.keep_weights) >= 0,
             "checkpoint_every, keep_last and keep_weights must be >= 0"),
            (self.max_skips_in_a_row >= 1, f"max_skips_in_a_row must be >= 1, got {self.max_skips_in_a_row}"),
            (self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}"),
            (self.validate_every >= 0, f"validate_every must be >= 0, got {self.validate_every}"),
            (self.device in ("auto", "cpu", "cuda"), f"device must be 'auto', 'cpu' or 'cuda', got {self.device!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

