"""Micro-batching: rank requests that arrive together are scored in one call per (prompt,
candidates), each gets its own row, and a failure reaches every request of its group only."""

from __future__ import annotations

import asyncio

import pytest
import torch

from pluralign.serve.batching import RankBatcher


def test_requests_of_one_turn_share_one_call_and_get_their_own_rows():
    calls = []

    def score(prompt, candidates, states):
        calls.append((prompt, len(candidates), list(states)))
        if prompt == "bad":
            raise ValueError("candidate 0 is empty text")
        return torch.tensor([[float(s) * 10 + i for i in range(len(candidates))] for s in states])

    sizes = []
    batcher = RankBatcher(score, max_batch=4, on_batch=sizes.append)

    async def go():
        futures = [batcher.submit("p", ["a", "b"], s) for s in range(6)]
        futures += [batcher.submit("q", ["a", "b", "c"], 7), batcher.submit("bad", ["x"], 8)]
        results = await asyncio.gather(*futures, return_exceptions=True)
        later = await batcher.submit("p", ["a", "b"], 9)  # a new turn: a new call
        return results, later

    results, later = asyncio.run(go())
    for s in range(6):
        assert results[s].tolist() == [s * 10, s * 10 + 1]
    assert results[6].tolist() == [70, 71, 72]
    assert isinstance(results[7], ValueError)
    assert later.tolist() == [90, 91]
    assert sizes == [4, 4, 1]  # 8 jobs in one turn, max_batch 4; then the lone one
    assert [(p, n) for p, n, _ in calls] == [("p", 2), ("p", 2), ("q", 3), ("bad", 1), ("p", 2)]
    assert calls[0][2] == [0, 1, 2, 3] and calls[1][2] == [4, 5]


def test_a_cancelled_request_does_not_break_the_batch():
    batcher = RankBatcher(lambda p, c, s: torch.zeros(len(s), len(c)))

    async def go():
        gone = batcher.submit("p", ["a"], 0)
        kept = batcher.submit("p", ["a"], 1)
        gone.cancel()
        return await kept

    assert asyncio.run(go()).tolist() == [0.0]
    with pytest.raises(RuntimeError):
        batcher.submit("p", ["a"], 0)  # outside an event loop
