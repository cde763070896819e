"""Entry point for ``python -m datasets``."""

from datasets.cli import app

app(prog_name="python -m datasets")
