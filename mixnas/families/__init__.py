"""Model families (one sub-package per model shape) and their registry; see family.py."""
from .family import Family
from .registry import families, family_for_task, family_named, family_of, register

__all__ = ["Family", "families", "family_for_task", "family_named", "family_of", "register"]
