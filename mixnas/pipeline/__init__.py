"""The NAS pipeline: supernet training, performance/cost collection, rank check."""
from .config import CollectSection, ModelSection, PipelineConfig, SupernetSection, load_pipeline_config
from .scoring import build_supernet, build_task, load_space, load_supernet, sample_arch, score
from .supernet_training import SupernetTrainingTask, supernet_training_task, train_supernet

__all__ = ["CollectSection", "ModelSection", "PipelineConfig", "SupernetSection", "SupernetTrainingTask",
           "build_supernet", "build_task", "load_pipeline_config", "load_space", "load_supernet",
           "sample_arch", "score", "supernet_training_task", "train_supernet"]
