"""MQAR (multi-query associative recall) as a task variant of the decoder-only LM family.

The models are the LM family's (same `lm` architectures, spaces, supernet, cost and export;
`family_of` an LM model is `LMFamily`); this variant changes the task side only: synthetic
key-value recall data (data.py), loss and accuracy at the query positions (task.py), the
report's metric "accuracy" (higher is better) and its own presets (configs/).
"""
from __future__ import annotations

from ..lm.family import LMFamily
from .data import SPLITS, MQARDataConfig


class MQARFamily(LMFamily):
    variant = True
    task = "mqar"
    data_config_class = MQARDataConfig
    test_metric = "accuracy"
    test_higher_is_better = True
    val_metrics = ("loss", "accuracy")

    def build_task(self, data_config: MQARDataConfig):
        from .task import MQARTask
        return MQARTask(data_config)

    def split_names(self, data_config: MQARDataConfig) -> list[str]:
        return list(SPLITS)

    def inference(self, model, directory):
        """No text generation: an MQAR model reads and writes token ids (call the model)."""
        raise ValueError(f"no inference API for {self.task} models; load_model({str(directory)!r}) and call it "
                         f"on (batch, length) token ids")
