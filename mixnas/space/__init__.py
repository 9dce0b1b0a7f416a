"""Architectures and search spaces."""
from .arch import (Arch, DecoderLayerArch, EncoderLayerArch, TransformerArch, ViTArch, ViTLayerArch,
                   arch_from_dict, arch_from_yaml, arch_to_yaml, load_arch, save_arch)
from .genes import DecoderChoices, StackChoices
from .search_space import SearchSpace, TransformerSpace, ViTSpace

__all__ = ["Arch", "DecoderChoices", "DecoderLayerArch", "EncoderLayerArch", "SearchSpace", "StackChoices",
           "TransformerArch", "TransformerSpace", "ViTArch", "ViTLayerArch", "ViTSpace", "arch_from_dict",
           "arch_from_yaml", "arch_to_yaml", "load_arch", "save_arch"]
