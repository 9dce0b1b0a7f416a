"""Architectures and search spaces: what every family's share (each family's own classes live in
mixnas/families/<name>/arch.py and space.py)."""
from .arch import Arch, StackArch, StackLayerArch, arch_from_dict, arch_from_yaml, arch_to_yaml, load_arch, save_arch
from .genes import StackChoices
from .search_space import SearchSpace, StackSpace

__all__ = ["Arch", "SearchSpace", "StackArch", "StackChoices", "StackLayerArch", "StackSpace", "arch_from_dict",
           "arch_from_yaml", "arch_to_yaml", "load_arch", "save_arch"]
