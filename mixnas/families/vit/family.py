"""Vision Transformer for image classification: what the pipeline needs to know about it.

Architecture `ViTArch` (arch.py), space `ViTSpace` (space.py), model `ViT` (model.py), supernet
`SupernetViT` (supernet.py), task `ClassificationTask` (task/task.py: digits,
Fashion-MNIST, CIFAR-10; top-1 accuracy). No cost options: FLOPs and latency are of one image
at model.config.image_size.
"""
from __future__ import annotations

from typing import Any

from ..family import Family
from .arch import ViTArch
from .config import ViTConfig
from .space import ViTSpace
from .task.task import ClassificationDataConfig


class ViTFamily(Family):
    name = "vit"
    task = "classification"
    arch_class = ViTArch
    space_class = ViTSpace
    data_config_class = ClassificationDataConfig
    model_config_class = ViTConfig
    test_metric = "accuracy"
    val_metrics = ("loss", "accuracy")

    def build_task(self, data_config: ClassificationDataConfig):
        from .task.task import ClassificationTask
        return ClassificationTask(data_config)

    def build_model(self, arch: ViTArch, config: ViTConfig):
        from .model import ViT
        return ViT(arch, config)

    def build_supernet(self, space: ViTSpace, config: ViTConfig, share_projections: bool = False):
        from .supernet import SupernetViT
        return SupernetViT.from_space(space, config, share_projections=share_projections)

    # ------------------------------------------------------------ using a trained model
    def save_assets(self, task, directory) -> None:
        """preprocessing.json: dataset, channels, image size, class names, normalisation."""
        from pathlib import Path

        from .inference import save_vit_assets
        save_vit_assets(task, Path(directory))

    def inference(self, model, directory):
        """A `Classifier`: `.predict(images)`, `.probabilities(images)` of raw images."""
        from .inference import Classifier
        return Classifier(model, directory)

    def export_program(self, model):
        """The forward on (batch, C, H, W) float images -> (batch, classes) logits, dynamic batch."""
        import torch
        from torch.export import Dim

        from ..family import ExportProgram
        c = model.config
        images = torch.randn(2, c.in_channels, c.image_size, c.image_size)  # batch 2: not specialised as 1
        return ExportProgram(model, (images,), ({0: Dim("batch")},), ("images",), ("logits",))

    def params_breakdown(self, arch: ViTArch, config: Any) -> dict[str, int]:
        from .cost import vit_params_breakdown
        return vit_params_breakdown(arch, config)

    def flops_breakdown(self, arch: ViTArch, config: Any, **options: int) -> dict[str, int]:
        from .cost import vit_flops
        if options:
            raise ValueError(f"a ViT has no sequence lengths or decoding (got {sorted(options)}); "
                             f"its FLOPs are at config.image_size")
        return vit_flops(arch, config)

    def cost_report(self, arch: ViTArch, config: Any, **options: int) -> dict[str, Any]:
        return {"image_size": config.image_size, **super().cost_report(arch, config, **options)}

    onnxruntime_unsupported = None

    def latency_workload(self, model, generator, device, **options: int):
        images, protocol = self._latency_image(model, generator, options)
        images = images.to(device)
        return (lambda: model(images)), protocol

    def onnxruntime_workload(self, model, open_sessions, generator, **options: int):
        """The same batch-1 image through the exported forward."""
        images, protocol = self._latency_image(model, generator, options)
        session = open_sessions()[None]
        feed = {session.get_inputs()[0].name: images.numpy()}
        return (lambda: session.run(None, feed)), protocol

    def _latency_image(self, model, generator, options: dict[str, int]):
        """(the one random image of the latency workload, its protocol description)."""
        import torch
        if options:
            raise ValueError(f"ViT latency takes no options (got {sorted(options)}); it runs one image")
        cfg = model.config
        images = torch.randn(1, cfg.in_channels, cfg.image_size, cfg.image_size, generator=generator)
        return images, {"task": self.task, "batch": 1, "image_size": cfg.image_size}
