"""The encoder-decoder Transformer family (translation, HAT's space), registered as "transformer".

Everything of the family lives in this folder: architecture and space (arch.py, space.py),
model config (config.py), the model and its supernet (model.py, supernet.py), the cost formulas
(cost.py), the translation task (task/: corpus, SentencePiece tokenizer, batching, beam search,
BLEU) and its presets (configs/).
"""
from ..registry import register
from .family import TransformerFamily

FAMILY = register(TransformerFamily())
