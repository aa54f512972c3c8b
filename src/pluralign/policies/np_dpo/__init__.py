"""NP-DPO (NP paper §3.2): a causal LM whose blocks are FiLM-modulated by z from a set encoder
over the user's context pairs, trained with DPO on the target pairs.

``policy`` the conditioned model, ``data`` tokenised tasks, ``train`` the objective and loop glue,
``encoder_warmstart`` the NP-BTL warm start of the set encoder, ``evaluate`` implicit-reward
accuracy and steered behaviour, ``experiment`` the config-driven driver behind
``pluralign policy experiment``. Submodules are imported on use.
"""
