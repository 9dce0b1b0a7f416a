"""Standalone models: what a sub-network of a supernet becomes after export."""
from .config import TransformerConfig, ViTConfig
from .io import build_model, load_model, save_model
from .transformer import (DecoderStates, EncoderOut, Transformer, length_rule_m, max_output_lengths,
                          sinusoidal_positions)
from .vit import ViT

__all__ = ["DecoderStates", "EncoderOut", "Transformer", "TransformerConfig", "ViT", "ViTConfig",
           "build_model", "length_rule_m", "load_model", "max_output_lengths", "save_model",
           "sinusoidal_positions"]
