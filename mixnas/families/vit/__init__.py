"""The Vision Transformer family (image classification), registered as "vit"."""
from ..registry import register
from .family import ViTFamily

FAMILY = register(ViTFamily())
