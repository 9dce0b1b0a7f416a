"""CLI commands of the ViT family, read by mixnas.cli without importing the family (keep this
file free of imports: `mixnas --help` must not load torch)."""

COMMANDS = {
    "predict": ("classify images with a trained image classifier",
                "mixnas.families.vit.predict:add_parser"),
}
