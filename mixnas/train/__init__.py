"""One trainer for translation, classification and supernet training.

Plug a task in (see `protocol` for the contract) and run:

    from mixnas.train import EpochBatches, TrainConfig, Trainer
    with Trainer(task, TrainConfig(save_dir="runs/x", max_updates=1000)) as trainer:
        trainer.train()

Under `torchrun --nproc_per_node=N` the same code trains data-parallel.
"""
from mixnas.train.batches import EpochBatches
from mixnas.train.checkpoint import (average_checkpoints, averaging_sources, latest_checkpoint, list_checkpoints,
                                     list_weight_files, load_checkpoint, seed_everything)
from mixnas.train.config import TrainConfig
from mixnas.train.losses import label_smoothed_cross_entropy
from mixnas.train.protocol import BatchIterator, TrainTask
from mixnas.train.trainer import NonFiniteLossError, Trainer

__all__ = ["BatchIterator", "EpochBatches", "NonFiniteLossError", "TrainConfig", "TrainTask", "Trainer",
           "average_checkpoints", "averaging_sources", "label_smoothed_cross_entropy",
           "latest_checkpoint", "list_checkpoints", "list_weight_files", "load_checkpoint", "seed_everything"]
