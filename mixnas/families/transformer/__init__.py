"""The encoder-decoder Transformer family (translation, HAT's space), registered as "transformer"."""
from ..registry import register
from .family import TransformerFamily

FAMILY = register(TransformerFamily())
