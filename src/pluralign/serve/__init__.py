"""``pluralign serve``: a personalization service over a trained run (issue 13).

One idea per module: :mod:`.db` (tables and engines), :mod:`.migrate` (Alembic), :mod:`.auth`
(tenants and API keys), :mod:`.store` (users, choices, pools), :mod:`.model` (the
:class:`pluralign.Personalizer` or a steered policy behind a lock, z cache), :mod:`.batching`
(micro-batched rank), :mod:`.generation` (the bounded pool where policy runs generate and rank),
:mod:`.metrics` (Prometheus), :mod:`.schemas` (the HTTP shapes), :mod:`.app` (routes).
The optional dependencies are the ``serve`` extra (``pip install 'pluralign[serve]'``).
"""
