"""Building blocks: MLPs, set encoders (context -> z), variational heads."""

from .decoder import ConditionedRewardDecoder
from .mlp import MLP, activation
from .set_encoders import AttentionSetEncoder, DeepSetEncoder, masked_pool
from .variational import GaussianHead

__all__ = ["MLP", "activation", "DeepSetEncoder", "AttentionSetEncoder", "masked_pool",
           "GaussianHead", "ConditionedRewardDecoder"]
