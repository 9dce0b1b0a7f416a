"""`ViTConfig`: the settings of a Vision Transformer that the search does not choose (image and
patch size, channels, classes, pooling, dropout, attention kernel options)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ...models.config import KERNEL_OPTIONS, POSITIVE_INT, RATE, FieldError, Rule, _check_fields, _load, with_default_kernel_options


@dataclass
class ViTConfig:
    image_size: int = 32
    patch_size: int = 4
    in_channels: int = 3
    num_classes: int = 10
    pool: str = "cls"  # "cls": class token; "mean": average of the patch tokens
    dropout: float = 0.0
    attention_options: dict = field(default_factory=dict)

    def __post_init__(self):
        _check_fields(self, VIT_RULES)
        self.attention_options = with_default_kernel_options(self.attention_options)
        if self.image_size % self.patch_size:
            raise FieldError("ViTConfig", "patch_size",
                             f"expected a divisor of image_size={self.image_size}, got {self.patch_size}")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    @property
    def num_tokens(self) -> int:
        return self.num_patches + (1 if self.pool == "cls" else 0)

    def kernel_options(self, kind: str) -> dict[str, Any]:
        return dict(self.attention_options.get(kind, {}))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], path: str = "model.config") -> "ViTConfig":
        """Typed and range-checked; errors name `path`.key (the experiment's model.config by default)."""
        return _load(cls, d, path)


VIT_RULES: dict[str, Rule] = {
    "image_size": POSITIVE_INT, "patch_size": POSITIVE_INT, "in_channels": POSITIVE_INT,
    "num_classes": POSITIVE_INT, "pool": (lambda v: v in ("cls", "mean"), "'cls' or 'mean'"), "dropout": RATE,
    "attention_options": KERNEL_OPTIONS,
}
ViTConfig.RULES = VIT_RULES
