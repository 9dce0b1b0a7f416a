"""Standalone models: what a sub-network of a supernet becomes after export (each family's model
lives in mixnas/families/<name>/model.py; this package builds, saves and loads any of them)."""
from .io import build_model, load_model, save_model

__all__ = ["build_model", "load_model", "save_model"]
