"""The Vision Transformer family (image classification), registered as "vit".

Everything of the family lives in this folder: architecture and space (arch.py, space.py),
model config (config.py), the model and its supernet (model.py, supernet.py), the cost formulas
(cost.py), the classification task (task/: digits, Fashion-MNIST, CIFAR-10 loaders, batching,
augmentation) and its presets (configs/).
"""
from ..registry import register
from .family import ViTFamily

FAMILY = register(ViTFamily())
