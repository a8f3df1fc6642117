"""The `abono` command, one module per group of commands (main: serve, import, runs)."""
