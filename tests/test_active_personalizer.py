"""Personalizer.next_question (issue 12, item 4) on numeric runs trained for a few steps."""

from __future__ import annotations

import pytest
import torch

from pluralign.active import NoLatentError
from pluralign.active.questions import particles_from_people, pool_vectors
from pluralign.data.synthetic import example43
from pluralign.personalizer import Personalizer
from pluralign.train.config import TrainConfig
from pluralign.train.rewards import RewardTrainConfig, TaskConfig
from pluralign.train.run import train_run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("active-runs")
    records, _ = example43(n_pairs=300, rho=0.0, seed=0, split=None)
    torch.manual_seed(0)
    out = {}
    for name, fields in (("btl", {}), ("np-btl", {"z_dim": 16}), ("vpl", {"latent_dim": 4})):
        cfg = RewardTrainConfig(
            model={"hidden_dim": 16, **({"embed_dim": 16} if fields else {}), **fields},
            tasks=TaskConfig(n_tasks=16, n_target=8, context_max=4, val_tasks=16),
            train=TrainConfig(learning_rate=3e-3, max_steps=5, eval_steps=5, save_steps=5, logging_steps=5,
                              metric_for_best_model="accuracy", greater_is_better=True,
                              load_best_model_at_end=True, disable_tqdm=True))
        train_run(records, name, cfg, root / name, log=lambda s: None)
        out[name] = Personalizer.from_pretrained(root / name)
    return out


POOL = [{"prompt": "", "a": [float(i % 5), 1.0], "b": [1.0, float(i % 7) - 3]} for i in range(30)]


def test_next_question_vpl_dicts_tuples_and_tensors(runs):
    p = runs["vpl"]
    user = p.user([{"chosen": [2.0, 0.0], "rejected": [0.0, 2.0]}])
    idx, item = p.next_question(user, POOL, seed=3)
    assert 0 <= idx < 30 and item is POOL[idx]
    assert p.next_question(user, POOL, seed=3)[0] == idx  # deterministic for a seed
    as_tuples = [(q["prompt"], q["a"], q["b"]) for q in POOL]
    assert p.next_question(user, as_tuples, seed=3)[0] == idx
    tensor = torch.tensor([[q["a"], q["b"]] for q in POOL])
    assert p.next_question(user, tensor, seed=3)[0] == idx
    # an already-asked question is not asked again
    assert p.next_question(user, POOL, seed=3, exclude=[idx])[0] != idx
    assert p.next_question(p.user([]), POOL, strategy="uncertainty")[0] in range(30)


def test_next_question_np_btl_needs_and_uses_particles(runs):
    p = runs["np-btl"]
    people = [[{"chosen": [s * 2.0, 0.0], "rejected": [0.0, s * 2.0]}] * 3 for s in (1, -1, 1, -1)]
    parts = particles_from_people(p, people)
    assert parts.z.shape == (4, 16)
    user = p.user([{"chosen": [2.0, 0.0], "rejected": [0.0, 2.0]}])
    pool = pool_vectors(p, POOL)  # embed once, ask many people
    idx, _ = p.next_question(user, pool, particles=parts)
    assert 0 <= idx < 30
    with pytest.raises(ValueError, match="particles=ParticlePosterior"):
        p.next_question(user, POOL)


def test_next_question_bad_input(runs):
    with pytest.raises(NoLatentError, match="needs a latent model"):
        runs["btl"].next_question(runs["btl"].user([]), POOL)
    p = runs["vpl"]
    with pytest.raises(ValueError, match="empty"):
        p.next_question(p.user([]), [])
    with pytest.raises(ValueError, match="pool item 1: missing field"):
        p.next_question(p.user([]), [POOL[0], {"prompt": "", "a": [1.0, 2.0]}])
    with pytest.raises(ValueError, match="3 features but the model takes option_dim=2"):
        p.next_question(p.user([]), torch.randn(4, 2, 3))
