"""CLI commands of the LM family, read by mixnas.cli without importing the family (keep this
file free of imports: `mixnas --help` must not load torch)."""

COMMANDS = {
    "sample": ("generate text with a trained language model",
               "mixnas.families.lm.sample:add_parser"),
}
