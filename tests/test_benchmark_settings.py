"""The benchmark scripts' one KEY=VALUE parser (benchmarks/settings.py): typed as the default it
replaces, booleans read as words (``bool("false")`` is True), unknown keys a clear stop."""

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location("bench_settings", Path(__file__).parents[1] / "benchmarks" / "settings.py")
settings = importlib.util.module_from_spec(spec)
spec.loader.exec_module(settings)


@dataclass
class Defaults:
    steps: int = 200
    beta: float = 0.05
    lora: bool = True
    mode: str = "likert"
    lapse: float | None = None


def test_values_take_the_type_of_their_default():
    got = settings.parse_settings(["steps=50", "beta=0.5", "lora=false", "mode=all_pairs", "lapse=0.1"], Defaults())
    assert got == {"steps": 50, "beta": 0.5, "lora": False, "mode": "all_pairs", "lapse": 0.1}
    assert type(got["steps"]) is int and got["lora"] is False
    assert settings.parse_settings(["lora=True", "lapse=3"], Defaults()) == {"lora": True, "lapse": 3}


@pytest.mark.parametrize("item", ["unknown=1", "steps", "steps=", "lora=maybe", "steps=1.5"])
def test_bad_settings_stop_with_a_message(item):
    with pytest.raises(SystemExit):
        settings.parse_settings([item], Defaults())


def test_allowed_keys_are_enforced():
    assert settings.parse_settings(["beta=0.1"], Defaults(), allowed=("beta",)) == {"beta": 0.1}
    with pytest.raises(SystemExit, match="beta"):
        settings.parse_settings(["steps=1"], Defaults(), allowed=("beta",))
