"""Text preference pairs as a policy trainer needs them: token ids, context embeddings, cached
reference log-probs, and NP task batches over them.

One :class:`PolicyData` holds the pairs of one split. Every pair is tokenised once (prompt with
the chat template, response + EOS; :mod:`pluralign.policies.logprobs`); its two options' cached
embeddings (``pluralign.features.embed``) are the set encoder's input when the pair is in a
context; its reference log-probs are computed the first time the pair is a target and then
looked up (the reference never changes).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from ...data.records import PreferenceRecord
from ...data.tables import user_ids, user_types
from ...data.tasks import TaskBatch, TaskItem, collate
from ..logprobs import TokenizedResponses, collate_tokenized, tokenize_pair
from ..reference import precompute_reference


@dataclass
class PolicyBatch:
    """B tasks: context embeddings (for z) and their N target pairs as 2N sequences.

    ``sequences`` rows 0..N-1 are the chosen responses, N..2N-1 the rejected ones; ``pair_task``
    (N,) says which task each target pair belongs to. ``reference`` is (2N,) or None when not
    yet known.
    """

    tasks: TaskBatch
    pairs: torch.Tensor  # (N,) pair indices
    pair_task: torch.Tensor  # (N,) long
    pair_unseen: torch.Tensor  # (N,) bool: target not in its task's context
    sequences: TokenizedResponses  # (2N, L)
    reference: torch.Tensor | None  # (2N,)
    prefix: torch.Tensor | None = None  # (2N, L, H) state entering the first trained block

    @property
    def n_pairs(self) -> int:
        return len(self.pairs)

    def to(self, device: torch.device | str) -> "PolicyBatch":
        return PolicyBatch(self.tasks.to(device), self.pairs.to(device), self.pair_task.to(device),
                           self.pair_unseen.to(device), self.sequences.to(device),
                           None if self.reference is None else self.reference.to(device),
                           None if self.prefix is None else self.prefix.to(device))


class PolicyData:
    """The pairs of one split, ready for DPO.

    Args:
        records: text preference records (``chosen`` preferred).
        tokenizer: the policy's tokenizer.
        chosen_emb, rejected_emb: (P, D) cached option embeddings, row i = record i; None for
            baselines that never read a context (a zero (P, 1) table stands in).
        max_length: tokens per prompt+response sequence.
    """

    def __init__(self, records: Sequence[PreferenceRecord], tokenizer: Any, *, max_length: int = 128,
                 chosen_emb: torch.Tensor | None = None, rejected_emb: torch.Tensor | None = None,
                 use_chat_template: bool | None = None):
        self.records = list(records)
        if not self.records:
            raise ValueError("PolicyData needs at least one record")
        bad = [i for i, r in enumerate(self.records) if r.is_numeric]
        if bad:
            raise TypeError(f"records {bad[:5]} have numeric options; a policy needs text")
        p = len(self.records)
        if (chosen_emb is None) != (rejected_emb is None):
            raise ValueError("pass both chosen_emb and rejected_emb, or neither")
        if chosen_emb is None:
            chosen_emb = rejected_emb = torch.zeros(p, 1)
        if chosen_emb.shape != rejected_emb.shape or chosen_emb.shape[0] != p:
            raise ValueError(f"embedding tables {tuple(chosen_emb.shape)} / {tuple(rejected_emb.shape)} "
                             f"must both be (P={p}, D)")
        self.chosen_emb, self.rejected_emb = chosen_emb.float(), rejected_emb.float()
        self.tokenizer = tokenizer
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        kw = dict(max_length=max_length, use_chat_template=use_chat_template)
        # Many users label the same pair: every distinct (prompt, response) is tokenised once and
        # its reference log-prob computed once (``seq_id`` -> ``unique_seqs``).
        self.unique_seqs: list[tuple[list[int], list[int]]] = []
        self._reference = torch.empty(0)
        seen: dict[tuple, int] = {}
        ids = []
        for r in self.records:
            for response in (r.chosen, r.rejected):
                key = (str(r.prompt), str(response))
                if key not in seen:
                    seen[key] = len(self.unique_seqs)
                    self.unique_seqs.append(tokenize_pair(tokenizer, r.prompt, response, **kw))
                ids.append(seen[key])
        self.seq_id = torch.tensor(ids, dtype=torch.long).view(p, 2)  # (P, 2): chosen, rejected
        self.users = user_ids(self.records)
        self.types = user_types(self.records)
        self._reference = torch.full((len(self.unique_seqs),), float("nan"))
        self.prefix_block = 0  # > 0: also cache the state entering this block (prefix.py)
        self._prefix: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.records)

    @property
    def option_dim(self) -> int:
        return self.chosen_emb.shape[1]

    def sequence_ids(self, pairs: Sequence[int]) -> torch.Tensor:
        """(2N,) ids of the unique sequences of N pairs: chosen first, then rejected."""
        idx = torch.as_tensor(list(pairs), dtype=torch.long)
        return torch.cat([self.seq_id[idx, 0], self.seq_id[idx, 1]])

    def collate_sequences(self, seq_ids: Sequence[int], padding_side: str = "left") -> TokenizedResponses:
        return collate_tokenized([self.unique_seqs[int(i)] for i in seq_ids], pad_token_id=self.pad_token_id,
                                 padding_side=padding_side)

    def sequences(self, pairs: Sequence[int], padding_side: str = "left") -> TokenizedResponses:
        """2N sequences for N pairs: chosen responses first, then rejected."""
        return self.collate_sequences(self.sequence_ids(pairs).tolist(), padding_side)

    def reference_of(self, seq_ids: Sequence[int], lm: torch.nn.Module | None = None,
                     batch_size: int = 16) -> torch.Tensor | None:
        """Cached reference log-probs of unique sequences; missing ones are computed with ``lm``
        (adapters off) when given, else None is returned."""
        idx = torch.as_tensor(list(seq_ids), dtype=torch.long)
        missing = sorted({int(i) for i in idx if torch.isnan(self._reference[i])
                          or (self.prefix_block and int(i) not in self._prefix)})
        if missing:
            if lm is None:
                return None
            device = next(lm.parameters()).device
            out = precompute_reference(lm, [self.unique_seqs[i] for i in missing], pad_token_id=self.pad_token_id,
                                       batch_size=batch_size, device=device,
                                       progress=len(missing) > 4 * batch_size, capture_block=self.prefix_block)
            logps = out[0] if self.prefix_block else out
            if self.prefix_block:
                self._prefix.update(zip(missing, out[1]))
            self._reference[torch.as_tensor(missing)] = logps
        return self._reference[idx].clone()

    def enable_prefix_cache(self, block: int) -> None:
        """Cache the hidden state entering ``block`` with every reference pass (0: off)."""
        if block != self.prefix_block:
            self._prefix.clear()
        self.prefix_block = block

    def prefix_of(self, seq_ids: Sequence[int], batch: TokenizedResponses) -> torch.Tensor | None:
        """(len, L, H) cached prefix states laid out like ``batch``, or None when not cached."""
        from ..prefix import pad_hidden

        if not self.prefix_block or any(int(i) not in self._prefix for i in seq_ids):
            return None
        return pad_hidden([self._prefix[int(i)] for i in seq_ids], batch)

    def reference(self, pairs: Sequence[int], lm: torch.nn.Module | None = None,
                  batch_size: int = 16) -> torch.Tensor | None:
        """(2N,) reference log-probs of N pairs [chosen..., rejected...] (see :meth:`reference_of`)."""
        return self.reference_of(self.sequence_ids(pairs).tolist(), lm, batch_size)

    def batch(self, items: Sequence[TaskItem], lm: torch.nn.Module | None = None,
              unseen_only: bool = False) -> PolicyBatch:
        """Collate task items; targets (all of them, or the unseen ones) become sequences."""
        tasks = collate(items, self.chosen_emb, self.rejected_emb)
        keep = tasks.target_unseen if unseen_only else tasks.target_mask
        task_of, slot = torch.nonzero(keep, as_tuple=True)
        pairs = tasks.target_index[task_of, slot]
        seq_ids = self.sequence_ids(pairs.tolist()).tolist()
        sequences = self.collate_sequences(seq_ids)
        reference = self.reference_of(seq_ids, lm)
        return PolicyBatch(tasks=tasks, pairs=pairs, pair_task=task_of,
                           pair_unseen=tasks.target_unseen[task_of, slot], sequences=sequences,
                           reference=reference, prefix=self.prefix_of(seq_ids, sequences))

    def subset(self, keep: np.ndarray | Sequence[int]) -> "PolicyData":
        """A PolicyData over the records ``keep`` (token ids and references carried over)."""
        keep = [int(i) for i in keep]
        out = object.__new__(PolicyData)
        out.records = [self.records[i] for i in keep]
        out.chosen_emb, out.rejected_emb = self.chosen_emb[keep], self.rejected_emb[keep]
        out.tokenizer, out.pad_token_id = self.tokenizer, self.pad_token_id
        # the unique-sequence table (and its reference cache) is shared with the parent
        out.unique_seqs, out._reference = self.unique_seqs, self._reference
        out.prefix_block, out._prefix = self.prefix_block, self._prefix
        out.seq_id = self.seq_id[keep]
        out.users = [self.users[i] for i in keep]
        out.types = [self.types[i] for i in keep]
        return out
