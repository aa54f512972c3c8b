"""Conditioned causal-LM policies.

This package holds the LM plumbing both methods share — ``logprobs`` (response-only log-probs),
``film`` (FiLM conditioning installed by a context manager), ``reference`` (reference log-probs
from the same weights with adapters and FiLM off), ``prefix`` (a frozen-prefix cache), ``tiny``
(tiny random models for tests), ``runs`` (a run folder's kind; loading a policy without its
training data) and ``steering`` (NP-DPO and CMPO behind one per-person interface: user, score,
generate; used by ``pluralign serve``) — and one subpackage per method: ``np_dpo/`` (NP paper §3.2) and
``cmpo/`` (plural heads, the MIT thesis). Submodules are imported on use so importing the
package stays cheap.
"""
