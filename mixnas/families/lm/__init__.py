"""The decoder-only language-model family (character-level text), registered as "lm".

Everything of the family lives in this folder: architecture and space (arch.py, space.py),
model config (config.py), the GPT-style model and its supernet (model.py, supernet.py), the
cost formulas (cost.py), data and task (data.py, task.py), the `mixnas sample` command
(commands.py, sample.py) and its presets (configs/).
"""
from ..registry import register
from .family import LMFamily

FAMILY = register(LMFamily())
