"""CLI commands: train (stage two)."""

COMMANDS: list = []
