"""Reward models with one interface: ``personalize(context) -> z``, ``reward(options, z)``,
``preference_prob(a, b, z)``, ``model(batch) -> (loss, metrics)``, ``save_pretrained`` /
``from_pretrained``. BTL and DPL (baselines), NP-BTL (neural process), VPL (variational) and
Mix-BTL (a mixture of rewards with an exact posterior; the default of ``pluralign train``)."""

from .base import PreparedCandidates, RewardConfig, RewardModel
from .btl import BTLConfig, BTLRewardModel
from .dpl import DPLConfig, DPLRewardModel
from .mixture import MixBTLConfig, MixBTLRewardModel
from .np_btl import ContextConfig, NPBTLConfig, NPBTLRewardModel, build_set_encoder
from .registry import MODELS, build_reward_model, config_class, reward_step
from .spo import spo_scaled_reward
from .vpl import VPLConfig, VPLRewardModel

__all__ = [
    "RewardConfig", "RewardModel", "PreparedCandidates", "BTLConfig", "BTLRewardModel", "DPLConfig", "DPLRewardModel",
    "ContextConfig", "NPBTLConfig", "NPBTLRewardModel", "VPLConfig", "VPLRewardModel",
    "MixBTLConfig", "MixBTLRewardModel",
    "MODELS", "build_reward_model", "config_class", "reward_step", "build_set_encoder",
    "spo_scaled_reward",
]
