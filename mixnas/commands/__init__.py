"""CLI subcommands; each module adds its parser (see mixnas.cli.COMMANDS)."""
