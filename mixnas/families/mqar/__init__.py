"""Multi-query associative recall (Zoology) on the decoder-only language models, registered as
the task "mqar": a task variant of the "lm" family (same models, another task).

data.py: the seeded generator and `MQARDataConfig`; task.py: `MQARTask`; family.py:
`MQARFamily`; configs/: arch and experiment presets (softmax vs elu-linear attention).
"""
from ..lm import FAMILY as _LM  # noqa: F401  the base registers first
from ..registry import register
from .family import MQARFamily

FAMILY = register(MQARFamily())
