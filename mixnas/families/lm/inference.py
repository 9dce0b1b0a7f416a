"""Using a trained character language model: its config holds the vocabulary, so a model
directory needs no other asset.

    lm = mixnas.load("runs/shakespeare_char/model")
    print(lm.generate("ROMEO:", tokens=200, temperature=0.8, top_k=20, seed=0))

`mixnas sample` prints exactly what `generate` returns for the same arguments.
"""
from __future__ import annotations

from pathlib import Path


class TextGenerator:
    """A character language model (`mixnas.load` builds it): `model`, `vocab`."""

    def __init__(self, model, directory: str | Path | None = None) -> None:
        config = getattr(model, "config", None)
        if not hasattr(model, "generate") or not getattr(config, "vocab", ""):
            raise ValueError(f"{directory or 'the model'} holds a {type(model).__name__}, "
                             f"not a character language model")
        self.model, self.directory, self.vocab = model, directory, config.vocab

    def default_prompt(self) -> str:
        """A newline when the vocabulary has one, else its first character."""
        return "\n" if "\n" in self.vocab else self.vocab[0]

    def generate(self, prompt: str | None = None, tokens: int = 500, temperature: float = 1.0,
                 top_k: int | None = None, seed: int = 0) -> str:
        """The prompt followed by `tokens` sampled characters (softmax(logits / temperature)
        among the `top_k` most likely; temperature 0 picks the most likely), drawn with a
        generator seeded by `seed`. Characters outside the vocabulary are a ValueError."""
        import torch
        if tokens < 0:
            raise ValueError(f"tokens must be >= 0, got {tokens}")
        if temperature < 0:
            raise ValueError(f"temperature must be >= 0 (0: always the most likely character), got {temperature}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        prompt = self.default_prompt() if prompt is None else prompt
        if not prompt:
            raise ValueError("the prompt must hold at least one character")
        config = self.model.config
        device = next(self.model.parameters()).device
        ids = torch.tensor([config.encode(prompt)], dtype=torch.long, device=device)
        generator = torch.Generator(device=device).manual_seed(seed)
        out = self.model.generate(ids, tokens, temperature=temperature, top_k=top_k, generator=generator)
        return config.decode(out[0].tolist())

    def __repr__(self) -> str:
        return f"<TextGenerator ({len(self.vocab)} characters) of {self.directory}>"
