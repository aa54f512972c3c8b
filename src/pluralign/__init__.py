"""pluralign: few-shot steerable (pluralistic) alignment."""

from typing import Any

__version__ = "0.1.0"
__all__ = ["Personalizer", "UserState", "Ranked", "__version__"]


def __getattr__(name: str) -> Any:
    # lazy: `import pluralign` stays cheap (no torch) for the CLI's --help and data commands
    if name in ("Personalizer", "UserState", "Ranked"):
        from . import personalizer
        return getattr(personalizer, name)
    raise AttributeError(f"module 'pluralign' has no attribute {name!r}")
