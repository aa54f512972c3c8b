"""CMPO (Manyika, MIT thesis): k LM heads on one shared trunk, logits mixed by attribute
weights λ, trained with cDPO.

``plural_heads`` the model, ``train`` the objective and cached pair tables, ``experiment`` the
driver behind ``pluralign cmpo train``, ``evaluate`` eq. 5.1 accuracy and interpolation,
``fewshot`` λ inferred from a user's choices, ``report`` the evaluation driver behind
``pluralign cmpo eval``. Submodules are imported on use.
"""
