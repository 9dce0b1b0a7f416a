"""mixnas: neural architecture search over Transformers whose attention kind is searched per layer."""

__version__ = "0.1.0"
