"""Conditioned causal-LM policies: log-prob utilities, FiLM, reference log-probs, NP-DPO.

CMPO's plural-head policies live in this package too (``plural*.py`` / ``cmpo*.py``).
Submodules are imported on use so importing the package stays cheap.
"""
