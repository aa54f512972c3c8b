"""pluralign: few-shot steerable (pluralistic) alignment."""

__version__ = "0.1.0"
