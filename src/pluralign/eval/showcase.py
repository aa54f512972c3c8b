"""The demo's ending (README main job): two new users each make three choices, and the same
candidate responses are ranked differently for each.

The two users are held out of training and evaluation altogether (``holdout_users`` of the
text bench) and are of different true types. Their three choices are pairs on prompts of the
test split; the candidates are several responses to another test prompt that neither user saw.
A personalised model (NP-BTL by default) turns each user's three choices into z and scores the
candidates r(y | z); BTL, which has no context, gives everybody the same ranking. Each ranking is
also checked against the user's true preference (the attribute the simulated type ranks by):
the fraction of candidate pairs it orders the way that user would.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.records import PreferenceRecord, prompt_text


def _short(text: Any, width: int) -> str:
    s = " ".join(prompt_text(text).split()) if not isinstance(text, str) else " ".join(text.split())
    return s if len(s) <= width else s[: width - 1] + "…"


def _words(text: str) -> int:
    return len(text.split())


@dataclass
class DemoUser:
    user_id: str
    type_id: int
    type_name: str
    choices: list[PreferenceRecord]


def pick_users(heldout: list[PreferenceRecord], n_choices: int, rng: np.random.Generator) -> list[DemoUser]:
    """One held-out user of each of the first two types, with ``n_choices`` test-split choices
    on distinct prompts."""
    by_user: dict[str, list[PreferenceRecord]] = {}
    for r in heldout:
        if r.split == "test" and isinstance(r.user_latent, int):
            by_user.setdefault(r.user_id, []).append(r)
    users, seen_types = [], set()
    for uid in sorted(by_user, key=lambda u: (by_user[u][0].user_latent, u)):
        recs = by_user[uid]
        t = recs[0].user_latent
        if t in seen_types:
            continue
        distinct: dict[str, PreferenceRecord] = {}
        for i in rng.permutation(len(recs)):
            distinct.setdefault(prompt_text(recs[i].prompt), recs[i])
        choices = list(distinct.values())[:n_choices]
        if len(choices) < n_choices:  # e.g. Pets: one prompt for everything
            choices = [recs[i] for i in rng.permutation(len(recs))[:n_choices]]
        users.append(DemoUser(uid, t, str(recs[0].meta.get("user_type", f"type {t}")), choices))
        seen_types.add(t)
        if len(users) == 2:
            break
    if len(users) < 2:
        raise ValueError("the demo needs held-out users of two different types with test pairs "
                         "(run the text bench with holdout_users >= 1 on data with >= 2 user types)")
    return users


def pick_candidates(records: list[PreferenceRecord], avoid: set[str], n: int, rng: np.random.Generator,
                    avoid_texts: frozenset[str] = frozenset()) -> tuple[Any, list[str], dict[str, dict]]:
    """A test prompt not in ``avoid`` with the most distinct responses (other than
    ``avoid_texts``), and ``n`` of them; also ``{response: attribute scores}`` from the records."""
    responses: dict[str, dict[str, dict]] = {}
    prompts: dict[str, Any] = {}
    for r in records:
        if r.split != "test" or not isinstance(r.chosen, str):
            continue
        key = prompt_text(r.prompt)
        prompts[key] = r.prompt
        pool = responses.setdefault(key, {})
        attrs = r.attributes or {}
        for text, side in ((r.chosen, 0), (r.rejected, 1)):
            if text not in avoid_texts:
                pool.setdefault(text, {a: v[side] for a, v in attrs.items()})
    keys = [k for k in responses if k not in avoid] or list(responses)
    if not keys:
        raise ValueError("no test prompt with text responses for the demo")
    most = max(len(responses[k]) for k in keys)
    best = sorted(k for k in keys if len(responses[k]) == most)
    key = best[int(rng.integers(len(best)))]
    texts = sorted(responses[key])
    chosen = [texts[i] for i in sorted(rng.permutation(len(texts))[:n])]
    return prompts[key], chosen, {t: responses[key][t] for t in chosen}


def _true_order_agreement(rewards: np.ndarray, attrs: list[dict], attribute: str, direction: int,
                          margin: float = 0.0) -> float | None:
    """Fraction of the candidate pairs the user has a preference on (attribute values differ by
    more than ``margin``; the data's tie rule) that the rewards order as the user would."""
    vals = [a.get(attribute) for a in attrs]
    if any(v is None for v in vals):
        return None
    right = total = 0
    for i, j in combinations(range(len(vals)), 2):
        if abs(vals[i] - vals[j]) <= margin or vals[i] == vals[j]:
            continue
        total += 1
        right += int(np.sign(rewards[i] - rewards[j]) == np.sign(direction * (vals[i] - vals[j])))
    return right / total if total else None


def _type_rule(type_name: str, attrs: dict) -> tuple[str, int, float] | None:
    """The attribute, direction and tie margin a simulated type ranks by, when the data say so."""
    from ..data.builtin.corpus import DEFAULT_MARGINS, PREFERENCES

    if type_name in PREFERENCES:
        attr, sign = PREFERENCES[type_name]
        return attr, sign, DEFAULT_MARGINS.get(attr, 0.0)
    if type_name in attrs:  # Pets: attributes are each group's rank of the pet
        return type_name, 1, 0.0
    return None


def run_showcase(bench: Any, model_name: str = "np-btl", n_choices: int = 3, n_candidates: int = 5,
                 seed: int = 0) -> dict[str, Any]:
    """Rank the same candidates for two held-out users of different types (see module doc).

    ``bench``: a :class:`pluralign.eval.text_bench.TextBench` run with ``holdout_users >= 1``.
    Returns a JSON-able dict; :func:`format_showcase` renders it.
    """
    if model_name not in bench.models:
        raise ValueError(f"model {model_name!r} was not trained (have {sorted(bench.models)})")
    rng = np.random.default_rng(seed)
    users = pick_users(bench.heldout, n_choices, rng)
    avoid = {prompt_text(c.prompt) for u in users for c in u.choices}
    seen = frozenset(t for u in users for c in u.choices for t in (c.chosen, c.rejected))
    prompt, cands, cand_attrs = pick_candidates(bench.records + bench.heldout, avoid, n_candidates, rng, seen)
    feats = bench.features
    if feats.embedder is None:
        raise ValueError("the demo needs text data (an embedder); these records carry vectors")
    raw = feats.embedder.embed([prompt] * len(cands), cands)
    options = feats.transform(raw).unsqueeze(0)  # (1, K, D)
    row_of = {id(r): len(bench.records) + i for i, r in enumerate(bench.heldout)}
    model = bench.models[model_name]
    out: dict[str, Any] = {"model": model_name, "prompt": prompt_text(prompt),
                           "prompt_is_new": prompt_text(prompt) not in avoid, "candidates": [], "users": []}
    for k, text in enumerate(cands):
        out["candidates"].append({"id": k + 1, "text": text, "words": _words(text), "attributes": cand_attrs[text]})
    for u in users:
        idx = torch.tensor([row_of[id(c)] for c in u.choices])
        cc, cr = feats.chosen[idx].unsqueeze(0), feats.rejected[idx].unsqueeze(0)
        with torch.no_grad():
            z = model.personalize(cc, cr, torch.ones(1, len(idx), dtype=torch.bool))
            r = model.reward(options, z)[0].numpy()
        rule = _type_rule(u.type_name, cand_attrs[cands[0]])
        agree = _true_order_agreement(r, [cand_attrs[c] for c in cands], *rule) if rule else None
        out["users"].append({
            "user_id": u.user_id, "true_type": u.type_name, "rule": list(rule) if rule else None,
            "choices": [{"prompt": prompt_text(c.prompt), "chosen": c.chosen, "rejected": c.rejected}
                        for c in u.choices],
            "rewards": [float(x) for x in r], "ranking": [int(i) + 1 for i in np.argsort(-r)],
            "agreement_with_true_preference": agree})
    if "btl" in bench.models:
        with torch.no_grad():
            btl = bench.models["btl"]
            r = btl.reward(options, btl.personalize(options[:, :0], options[:, :0],
                                                    torch.ones(1, 0, dtype=torch.bool)))[0].numpy()
        out["btl"] = {"rewards": [float(x) for x in r], "ranking": [int(i) + 1 for i in np.argsort(-r)]}
    return out


def format_showcase(show: dict[str, Any], width: int = 100) -> str:
    """The demo's terminal text: the candidates, each user's choices, rankings side by side."""
    w = textwrap.TextWrapper(width=width, initial_indent="    ", subsequent_indent="    ")
    lines = ["", "=" * width, "Two new users (held out of training), three choices each, one set of candidates",
             "=" * width]
    for i, u in enumerate(show["users"]):
        label = "AB"[i]
        lines.append(f"\nUser {label} ({u['user_id']}, true type: {u['true_type']}) chose:")
        for j, c in enumerate(u["choices"], 1):
            lines.append(f"  {j}. to \"{_short(c['prompt'], width - 10)}\"")
            lines.append(f"     preferred ({_words(c['chosen'])} words): \"{_short(c['chosen'], width - 30)}\"")
            lines.append(f"     over      ({_words(c['rejected'])} words): \"{_short(c['rejected'], width - 30)}\"")
    lines.append("\nCandidate responses to a new prompt neither user has seen:" if show.get("prompt_is_new", True)
                 else "\nCandidate responses (none of them among the users' choices) to:")
    lines.extend(w.wrap(f"\"{show['prompt']}\""))
    for c in show["candidates"]:
        extra = ", ".join(f"{k} {v:g}" for k, v in c["attributes"].items() if k != "length")
        lines.append(f"  [{c['id']}] ({c['words']} words{'; ' + extra if extra else ''}) "
                     f"\"{_short(c['text'], width - 40)}\"")
    cols = [f"user {'AB'[i]} ({u['true_type']})" for i, u in enumerate(show["users"])]
    rankings = [u["ranking"] for u in show["users"]]
    rewards = [u["rewards"] for u in show["users"]]
    if "btl" in show:
        cols.append("BTL (same for all)")
        rankings.append(show["btl"]["ranking"])
        rewards.append(show["btl"]["rewards"])
    cw = max(24, *(len(c) + 2 for c in cols))
    lines.append(f"\nRanking by {show['model']} (reward r(y | z) from each user's three choices):")
    lines.append("  rank  " + "".join(c.ljust(cw) for c in cols))
    for pos in range(len(show["candidates"])):
        cells = []
        for rank, rew in zip(rankings, rewards):
            k = rank[pos]
            words = show["candidates"][k - 1]["words"]
            cells.append(f"[{k}] {words:>4} words  {rew[k - 1]:+6.2f}".ljust(cw))
        lines.append(f"  {pos + 1:>4}  " + "".join(cells))
    for i, u in enumerate(show["users"]):
        a = u["agreement_with_true_preference"]
        if a is not None:
            attr, sign, margin = u["rule"]
            tie = f"; differences <= {margin:g} are ties" if margin else ""
            lines.append(f"  user {'AB'[i]}'s ranking orders {100 * a:.0f}% of the candidate pairs as a "
                         f"{u['true_type']} user would ({'higher' if sign > 0 else 'lower'} {attr} first{tie})")
    return "\n".join(lines)


def write_showcase(show: dict[str, Any], out_dir: str | Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "demo.json").write_text(json.dumps(show, indent=2) + "\n")
    (out / "demo.txt").write_text(format_showcase(show) + "\n")
    return out / "demo.json", out / "demo.txt"
