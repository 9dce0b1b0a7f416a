"""Training metrics: one JSON object per line in `metrics.jsonl` and TensorBoard scalars.

Only rank 0 creates a `MetricsLog`. Every record carries `step` and `kind` ("train" or
"valid"); on resume, records past the resumed step (written by the killed run after its last
checkpoint) are dropped so that the log reads like one uninterrupted run.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from mixnas.fileio import atomic_write_text


class MetricsLog:
    def __init__(self, save_dir: str | Path, tensorboard: bool = True):
        self.path = Path(save_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._writer = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # slow import: only when wanted

            self._writer = SummaryWriter(log_dir=str(Path(save_dir) / "tensorboard"))

    def truncate_after(self, step: int) -> None:
        """Drop records with step > `step` (rewritten atomically)."""
        if not self.path.exists():
            return
        kept = []
        for line in self.path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except json.JSONDecodeError:
                continue  # a line cut short by a kill
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def write(self, kind: str, step: int, values: dict[str, Any]) -> None:
        record = {"kind": kind, "step": step, **{k: _plain(v) for k, v in values.items()}}
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")
        if self._writer is not None:
            for key, value in values.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool):
                    self._writer.add_scalar(f"{kind}/{key}", value, step)
            self._writer.flush()

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


def _plain(value: Any) -> Any:
    """JSON has no NaN/inf: write them as strings so the line stays parseable."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
