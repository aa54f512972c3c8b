"""The latent-conditioned policy π(a | s, z): d3rlpy's Implicit Q-Learning (Kostrikov et al.;
VPL §4 and App. E, Table 3) on the relabelled dataset, with z appended to the observation.

VPL Table 3: 2 x 256 MLPs (4 x 1024 for > 5 users), Adam 3e-4, discount 0.99, expectile 0.9,
temperature (d3rlpy's ``weight_temp``, the inverse temperature β of the advantage weights) 10,
4M steps of data. The defaults here differ, for a CPU budget of a few thousand gradient steps:
smaller MLPs, learning rate 1e-3, discount 0.9, target-network rate 0.02 and rewards x 20, on
the bench's *progress* rewards r(s_{t+1}, z) − r(s_t, z) (``pluralign.rl.bench``). Chosen by the
oracle's success on seed-0 runs (docs/rl.md, "Tuning record"); the reported benches use seed 1.
d3rlpy is optional (the ``rl`` extra) and imported only when a policy is trained.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .env import require


@dataclass
class IQLSettings:
    """steps: gradient steps (the paper trains far longer; see docs/rl.md). hidden: width of
    every MLP (actor, critics, value); layers: their depth. standardize: scale observations
    (state and z) to zero mean, unit variance on the dataset (d3rlpy's observation scaler).
    reward_scale: rewards are multiplied by it (d3rlpy's reward scaler): dense per-step rewards
    differ by little between actions, and the advantage weights exp(weight_temp · A) need
    differences of order one to prefer the better action. tau: the target critics' soft-update
    rate (d3rlpy's default 0.005 lags behind for a few thousand steps)."""

    steps: int = 2000
    hidden: int = 128
    layers: int = 2
    batch_size: int = 256
    learning_rate: float = 1e-3
    gamma: float = 0.9
    tau: float = 0.02
    expectile: float = 0.9
    weight_temp: float = 10.0
    max_weight: float = 100.0
    standardize: bool = True
    reward_scale: float = 20.0

    def __post_init__(self) -> None:
        if min(self.steps, self.hidden, self.layers, self.batch_size) < 1:
            raise ValueError("IQLSettings: steps, hidden, layers and batch_size must be >= 1")


class IQLPolicy:
    """A trained IQL actor: ``act(states, z)`` -> actions (deterministic: the mean action)."""

    def __init__(self, algo, z_dim: int):
        self.algo, self.z_dim = algo, z_dim

    def act(self, states: np.ndarray, z: np.ndarray) -> np.ndarray:
        z = np.asarray(z, np.float32).reshape(len(states), self.z_dim)
        obs = np.concatenate([np.asarray(states, np.float32), z], axis=1)
        return np.clip(self.algo.predict(obs), -1.0, 1.0)


def train_iql(states: np.ndarray, z: np.ndarray, actions: np.ndarray, rewards: np.ndarray,
              episode_len: int, settings: IQLSettings, seed: int = 0) -> IQLPolicy:
    """IQL on episodes of ``episode_len`` rows: states (N, D), per-row latents z (N, L), actions
    (N, A), rewards (N,). Episodes end by timeout (the maze never terminates)."""
    d3rlpy = require("d3rlpy")
    _quiet_d3rlpy()
    n = len(states)
    if not (len(z) == len(actions) == len(rewards) == n) or n % episode_len:
        raise ValueError(f"states, z, actions and rewards need the same rows, a multiple of "
                         f"episode_len={episode_len}; got {n}, {len(z)}, {len(actions)}, {len(rewards)}")
    obs = np.concatenate([states, z], axis=1).astype(np.float32)
    timeouts = np.zeros(n, dtype=np.float32)
    timeouts[episode_len - 1::episode_len] = 1.0
    dataset = d3rlpy.dataset.MDPDataset(obs, actions.astype(np.float32),
                                        rewards.astype(np.float32).reshape(-1, 1),
                                        np.zeros(n, np.float32), timeouts=timeouts)
    d3rlpy.seed(seed)
    enc = d3rlpy.models.VectorEncoderFactory([settings.hidden] * settings.layers)
    algo = d3rlpy.algos.IQLConfig(
        batch_size=settings.batch_size, gamma=settings.gamma, tau=settings.tau, expectile=settings.expectile,
        weight_temp=settings.weight_temp, max_weight=settings.max_weight,
        actor_learning_rate=settings.learning_rate, critic_learning_rate=settings.learning_rate,
        actor_encoder_factory=enc, critic_encoder_factory=enc, value_encoder_factory=enc,
        reward_scaler=d3rlpy.preprocessing.MultiplyRewardScaler(settings.reward_scale),
        observation_scaler=d3rlpy.preprocessing.StandardObservationScaler() if settings.standardize else None,
    ).create(device="cpu:0")
    algo.fit(dataset, n_steps=settings.steps, n_steps_per_epoch=settings.steps, show_progress=False,
             save_interval=settings.steps + 1, logger_adapter=d3rlpy.logging.NoopAdapterFactory())
    return IQLPolicy(algo, z.shape[1])


def _quiet_d3rlpy() -> None:
    """d3rlpy logs every model build at debug level through structlog; keep warnings only."""
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
