"""Personalised control (VPL §4, App. D–E): Maze-Navigation with users who want the ball at
their own goal, latent-conditioned reward models trained on their state comparisons, offline
IQL on the relabelled dataset, and test-time steering from a few answered queries.

Modules: :mod:`.maze` (map, shortest-path distances), :mod:`.env` (MuJoCo point mass),
:mod:`.dataset` (offline data), :mod:`.users` (labels), :mod:`.views` (what the reward models
read of a state), :mod:`.relabel` (Alg. 2/3 and reward scaling), :mod:`.iql` (d3rlpy IQL),
:mod:`.queries` (test users' answers), :mod:`.rollout` (test time), :mod:`.setting` (what a goal
count fixes), :mod:`.bench` and :mod:`.report`. MuJoCo, gymnasium-robotics and d3rlpy (``pip install 'pluralign[rl]'``) are
imported only by :mod:`.env` and :mod:`.iql`, when a simulation or a policy is needed.
"""
