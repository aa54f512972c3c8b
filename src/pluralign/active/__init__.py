"""Active query selection: which questions to ask a new user so that few answers personalise
the model (VPL App. B). ``select_queries`` is the entry point; NP-BTL needs a
``ParticlePosterior`` built once from training users' contexts."""

from .bayes import bayes_gain, bayes_predict, noisy_table, type_log_posterior
from .info_gain import binary_entropy, information_gain, monte_carlo_information_gain, single_pair_gain
from .posterior import (NoLatentError, ParticlePosterior, answer_log_likelihood, latent_kind, point_latent,
                        posterior_samples)
from .scoring import OptionScorer
from .select import STRATEGIES, Pool, ask_sequentially, select_queries

__all__ = [
    "select_queries", "ask_sequentially", "Pool", "STRATEGIES", "ParticlePosterior", "NoLatentError",
    "latent_kind", "point_latent", "posterior_samples", "answer_log_likelihood", "OptionScorer",
    "information_gain", "single_pair_gain", "monte_carlo_information_gain", "binary_entropy",
    "type_log_posterior", "bayes_gain", "bayes_predict", "noisy_table",
]
