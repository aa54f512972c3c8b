"""``KEY=VALUE`` settings on the command line of the benchmark scripts, typed as the default they
replace (one parser for ``cmpo_validation_variants.py``, ``rl_goal_identification.py --train`` and
``rl_mix_policy.py``)."""

from __future__ import annotations

from typing import Any

TRUE, FALSE = ("true", "1", "yes"), ("false", "0", "no")


def typed_value(text: str, default: Any) -> Any:
    """``text`` as the type of ``default``. Booleans take true/false, 1/0, yes/no (``bool("false")``
    is True, so plain casting would turn ``lora=false`` on); a ``None`` default takes an int, a float
    or the text itself."""
    if isinstance(default, bool):
        low = text.strip().lower()
        if low not in TRUE + FALSE:
            raise SystemExit(f"{text!r} is not a boolean: use true or false")
        return low in TRUE
    if default is None:
        for cast in (int, float):
            try:
                return cast(text)
            except ValueError:
                pass
        return text
    try:
        return type(default)(text)
    except (TypeError, ValueError) as e:
        raise SystemExit(f"{text!r} is not a {type(default).__name__}: {e}") from None


def parse_settings(items: list[str], defaults: Any, allowed: tuple[str, ...] | None = None,
                   what: str = "setting") -> dict[str, Any]:
    """``["KEY=VALUE", ...]`` -> {KEY: value typed as ``defaults.KEY``}; a KEY that ``defaults``
    lacks, or outside ``allowed`` where given, or a missing value stops the script with the keys
    it takes."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not value or not hasattr(defaults, key) or (allowed is not None and key not in allowed):
            keys = allowed if allowed is not None else type(defaults).__name__ + " fields"
            raise SystemExit(f"{what} {item!r}: give KEY=VALUE with KEY one of {keys}")
        out[key] = typed_value(value, getattr(defaults, key))
    return out
