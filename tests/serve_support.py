"""A tiny trained *text* run for the service tests: a random BERT (byte tokenizer) saved to a
folder as the embedder, and NP-BTL trained for a few steps on generated text preferences of two
kinds of users (one likes short answers, one likes long ones)."""

from __future__ import annotations

import random
from pathlib import Path

import torch
from transformers import BertConfig, BertModel

PROMPTS = ["How do I boil an egg?", "What is a good name for a cat?", "How far is the moon?",
           "Why is the sky blue?", "How do I make tea?", "What should I read next?"]
SHORT = ["Boil it.", "Tom.", "Far.", "Light.", "Steep leaves.", "A novel."]
LONG = ["Put the egg in boiling water for about nine minutes, then cool it in cold water.",
        "Many people like classic names such as Tom, Luna or Oliver for a cat.",
        "The moon is about 384,000 kilometres from the Earth on average.",
        "Sunlight scatters off air molecules and blue light scatters the most.",
        "Heat water, pour it over the leaves, and let it steep for three minutes.",
        "Try a novel by an author you liked, or a classic you never finished."]
CANDIDATES = ["Yes.", "Short answer.", "A somewhat longer answer with a few more words in it.",
              "A very long answer that goes on and on, with many words, details and examples for you."]


def tiny_encoder(folder: Path) -> Path:
    """Save a random 2-layer BERT and a byte-level tokenizer to ``folder``."""
    from pluralign.policies.tiny import tiny_tokenizer

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=259, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=256, pad_token_id=258)
    BertModel(cfg).eval().save_pretrained(folder)
    tiny_tokenizer(chat_template=False).save_pretrained(folder)
    return folder


def text_records(n_users: int = 16, per_user: int = 24, seed: int = 0):
    from pluralign.data.records import PreferenceRecord

    rng = random.Random(seed)
    out = []
    for u in range(n_users):
        kind = u % 2  # 0 prefers short answers, 1 long ones
        for j in range(per_user):
            i = rng.randrange(len(PROMPTS))
            short, long_ = SHORT[i], LONG[i]
            chosen, rejected = (short, long_) if kind == 0 else (long_, short)
            out.append(PreferenceRecord(user_id=f"u{u}", prompt=PROMPTS[i], chosen=chosen, rejected=rejected,
                                        user_latent=kind, pair_id=f"p{i}-{j}",
                                        split="train" if j < per_user // 2 else "validation"))
    return out


def make_text_run(root: Path, steps: int = 30, model: str = "np-btl") -> Path:
    """Train ``model`` on the generated text records through the tiny encoder (the run records
    its embedder, so :class:`pluralign.Personalizer` embeds new text the same way)."""
    from pluralign.features.options import open_embedder
    from pluralign.train.config import TrainConfig
    from pluralign.train.rewards import RewardTrainConfig, TaskConfig
    from pluralign.train.run import train_run

    embedder = open_embedder(str(tiny_encoder(root / "encoder")), max_length=256, cache_dir=root / "cache")
    embedder.progress = False
    fields = {"hidden_dim": 32, "embed_dim": 32, "z_dim": 16} if model == "np-btl" else {"hidden_dim": 32}
    cfg = RewardTrainConfig(
        model=fields, tasks=TaskConfig(n_tasks=8, context_max=4, n_target=6, val_tasks=16),
        train=TrainConfig(learning_rate=1e-3, max_steps=steps, eval_steps=steps, save_steps=steps,
                          logging_steps=steps, metric_for_best_model="accuracy", greater_is_better=True,
                          load_best_model_at_end=True, disable_tqdm=True),
        split_fractions=(0.6, 0.2, 0.2))
    torch.manual_seed(0)
    train_run(text_records(), model, cfg, root / "run", embedder=embedder, data_file="serve-prefs.jsonl",
              log=lambda s: None)
    return root / "run"


def require(env_var: str | None = None, binary: str | None = None) -> str | None:
    """The value of ``env_var`` (or path of ``binary``); skips the test when it is absent locally,
    but fails under CI (``CI`` set), where ``.ci/run`` must have provided it."""
    import os
    import shutil

    import pytest

    value = os.environ.get(env_var) if env_var else shutil.which(binary)
    if not value:
        what = f"${env_var}" if env_var else f"the {binary} binary"
        if os.environ.get("CI"):
            pytest.fail(f"{what} is missing under CI; .ci/run must provide it")
        pytest.skip(f"{what} not available (set by .ci/run)")
    return value


def fresh_pg_database(base_url: str) -> str:
    """Create an empty database on the cluster of ``base_url``; returns its URL."""
    import uuid

    from sqlalchemy import create_engine, text

    from pluralign.serve.db import normalize_url

    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(normalize_url(base_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base_url.rsplit("/", 1)[0] + "/" + name


_RUNS: dict[str, Path] = {}


def shared_text_run(tmp_path_factory, model: str = "np-btl") -> Path:  # noqa: ANN001
    """One tiny text run per test process (several test modules share it)."""
    if model not in _RUNS:
        _RUNS[model] = make_text_run(tmp_path_factory.mktemp(f"serve-{model}"), steps=8, model=model)
    return _RUNS[model]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ThreadServer:
    """uvicorn serving ``app`` on 127.0.0.1 in a background thread (a context manager)."""

    def __init__(self, app) -> None:  # noqa: ANN001
        import uvicorn

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))

    def __enter__(self) -> "ThreadServer":
        import threading
        import time

        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:  # noqa: ANN002
        self.server.should_exit = True
        self.thread.join(timeout=10)


def process_server(run: Path, db: str, *, workers: int = 1):  # noqa: ANN201
    """``pluralign serve RUN --db DB`` as a child process on a free port: (Popen, url)."""
    from pluralign.serve.loadgen import spawn_server

    src = str(Path(__file__).resolve().parents[1] / "src")
    return spawn_server(run, db, port=free_port(), workers=workers, pythonpath=src)


# -- tiny policy runs (generate) -------------------------------------------------------------------
def _tiny_base(folder: Path) -> Path:
    """A random tiny llama and its byte-level tokenizer saved where a policy records its base."""
    from pluralign.policies.tiny import tiny_causal_lm, tiny_tokenizer

    tiny_causal_lm("llama", seed=0).save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def make_np_dpo_run(root: Path) -> Path:
    """An NP-DPO run folder as ``pluralign policy train`` leaves it (``RUN/best``), with the tiny
    BERT as context embedder. FiLM starts as the identity (its output layer is zero), so it is set
    to random values: then z visibly steers generation, as after training."""
    from pluralign.policies.np_dpo.policy import NPDPOConfig, NPDPOPolicy
    from pluralign.policies.tiny import tiny_causal_lm

    base, encoder = _tiny_base(root / "base"), tiny_encoder(root / "encoder")
    torch.manual_seed(0)
    # encoder_odd: opposite choices give opposite z (and no choices z = 0)
    cfg = NPDPOConfig(base_model=str(base), option_dim=32, context_embedder=str(encoder), z_dim=8,
                      encoder_hidden=16, lora_rank=4, encoder_odd=True)
    policy = NPDPOPolicy(tiny_causal_lm("llama", seed=0), cfg)
    with torch.no_grad():
        for p in policy.film.parameters():
            p.normal_(0.0, 0.1)
        for p in policy.encoder.outer.parameters():  # the random BERT's texts differ little
            p.mul_(30.0)
    policy.save_pretrained(root / "run" / "best")
    return root / "run"


def make_cmpo_run(root: Path, fewshot: bool = True) -> Path:
    """A CMPO run folder as ``pluralign cmpo train`` + ``eval`` leave it: ``cmpo/model``,
    ``experiment.json`` and (``fewshot``) ``fewshot/model``. The heads start as copies of the
    base head, so each is moved by its own random offset: then lambda visibly steers."""
    import json

    from pluralign.policies.cmpo.fewshot import FewShotConfig, FewShotWeights
    from pluralign.policies.cmpo.plural_heads import PluralConfig, PluralLM
    from pluralign.policies.tiny import tiny_causal_lm

    base = _tiny_base(root / "base")
    torch.manual_seed(0)
    model = PluralLM(tiny_causal_lm("llama", seed=0), PluralConfig(attributes=["concise", "detailed"],
                                                                   base_model=str(base), lora_rank=4))
    with torch.no_grad():
        model.heads.add_(torch.randn_like(model.heads))
    run = root / "run"
    model.save_pretrained(run / "cmpo" / "model")
    (run / "experiment.json").write_text(json.dumps({"attributes": ["concise", "detailed"], "beta": 0.5,
                                                     "max_length": 64, "base_model": str(base)}))
    if fewshot:
        FewShotWeights(FewShotConfig(k=2, hidden=16, features="sum+mean")).save_pretrained(run / "fewshot" / "model")
    return run
