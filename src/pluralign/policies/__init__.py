"""Conditioned causal-LM policies.

This package holds the LM plumbing both methods share — ``logprobs`` (response-only log-probs),
``film`` (FiLM conditioning installed by a context manager), ``reference`` (reference log-probs
from the same weights with adapters and FiLM off), ``prefix`` (a frozen-prefix cache), ``tiny``
(tiny random models for tests) — and one subpackage per method: ``np_dpo/`` (NP paper §3.2) and
``cmpo/`` (plural heads, the MIT thesis). Submodules are imported on use so importing the
package stays cheap.
"""
