"""The `/agent` console: `dispatch` maps each subcommand to the module of its area."""
