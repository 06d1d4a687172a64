"""gen2hal's tool side: rendering of target descriptions, PE validation, analysis and generation, and the CLI."""

__version__ = "0.1.0"
