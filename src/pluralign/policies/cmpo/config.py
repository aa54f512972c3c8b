"""The architecture of a CMPO plural policy (thesis §3.2.1, §5.2): which heads, LoRA on the trunk
or not, full or low-rank heads, and where LoRA goes in a given base model."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import nn

# LoRA targets "on the attention blocks" (thesis §5.2), by architecture
ATTENTION_TARGETS = (("q_proj", "k_proj", "v_proj", "o_proj"), ("c_attn",), ("query_key_value",))


@dataclass
class PluralConfig:
    """Architecture of a CMPO plural policy.

    ``attributes`` names the k heads, in order. ``lora=False`` freezes the trunk (heads only);
    ``train_heads=False`` with k = 1 is an ordinary LoRA policy (the DPO/SFT baselines).
    """

    attributes: list[str] = field(default_factory=lambda: ["helpfulness", "verbosity"])
    base_model: str = ""  # HF id or local folder of the base LM, recorded for from_pretrained
    lora: bool = True
    lora_rank: int = 8
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_target_modules: list[str] | None = None  # None: the attention projections
    train_heads: bool = True
    head_rank: int | None = None  # None: full heads (thesis); r: head_j = W + U_j V_j, rank r

    def __post_init__(self) -> None:
        if not self.attributes:
            raise ValueError("a plural model needs at least one attribute (head)")
        if len(set(self.attributes)) != len(self.attributes):
            raise ValueError(f"attribute names must be distinct, got {self.attributes}")
        if self.lora_rank < 1:
            raise ValueError(f"lora_rank must be >= 1, got {self.lora_rank}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.head_rank is not None and self.head_rank < 1:
            raise ValueError(f"head_rank must be >= 1 or None, got {self.head_rank}")

    @property
    def k(self) -> int:
        return len(self.attributes)


def attention_targets(model: nn.Module) -> list[str]:
    """Names of the attention projections LoRA should adapt in ``model``."""
    names = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    for group in ATTENTION_TARGETS:
        if all(n in names for n in group):
            return list(group)
    raise ValueError("could not find attention projections to put LoRA on; set lora_target_modules")
