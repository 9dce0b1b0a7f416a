"""CLI commands of the translation family, read by mixnas.cli without importing the family
(keep this file free of imports: `mixnas --help` must not load torch)."""

COMMANDS = {
    "translate": ("translate sentences with a trained translation model",
                  "mixnas.families.transformer.translate:add_parser"),
}
