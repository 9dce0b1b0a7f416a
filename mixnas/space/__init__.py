"""Architectures and search spaces."""
from .arch import (Arch, DecoderLayerArch, EncoderLayerArch, TransformerArch, ViTArch, ViTLayerArch,
                   arch_from_dict, arch_from_yaml, arch_to_yaml, load_arch, save_arch)

__all__ = ["Arch", "DecoderLayerArch", "EncoderLayerArch", "TransformerArch", "ViTArch", "ViTLayerArch",
           "arch_from_dict", "arch_from_yaml", "arch_to_yaml", "load_arch", "save_arch"]
