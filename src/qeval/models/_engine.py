"""Greedy decoding with per-row stopping and slot refill (continuous batching) for HF causal LMs.

A static batch (``model.generate`` on ``batch_size`` prompts) runs until its slowest
row ends, so most of its steps feed rows that already stopped. Here a fixed number of
*slots* decode together; a row leaves the batch as soon as it emits an end token, hits
``max_new_tokens`` or completes a stop string, and the next waiting prompt is prefilled
and merged into its slot. The KV cache is a plain :class:`transformers.DynamicCache`
whose rows we select (drop) and left-pad + concatenate (merge) along the batch axis;
an attention mask marks padding and ``position_ids = cumsum(mask) - 1`` keep every
row's true positions, so each row computes what it would alone (up to float rounding
of batched kernels: see ``tests/test_engine.py`` for the batch-1 equivalence check).

Waiting prompts are taken longest first, so rows prefilled together have similar
lengths. When every prompt starts with the same tokens (a system prompt, few-shot
examples) that prefix is prefilled once and its KV copied into each new row.
:func:`iter_greedy` hands each completion back as soon as its row ends, so a caller
can score and journal finished blocks of cases while the batch keeps decoding.

Both run on :class:`GreedyEngine`, which takes one forward pass per ``step()`` and accepts
prompts (``admit``) at any time, each with its own ``max_new_tokens``: :func:`iter_greedy`
admits a fixed list up front; an in-process server (:mod:`qeval.load._inprocess`) admits
requests as they arrive, first come first served.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers.cache_utils import DynamicLayer

MIN_SHARED_PREFIX_TOKENS = 16
"""Shorter common prefixes are prefilled with each row: the copy would save little."""


class EngineUnsupported(Exception):
    """The model's cache or forward does not fit the engine; use ``model.generate`` instead."""


_PROCESSOR_DEFAULTS = {
    "repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "encoder_no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "sequence_bias": (None,),
    "min_new_tokens": (None, 0),
    "min_length": (None, 0),
}


def check_generation_config(config: Any) -> None:
    """Raise :class:`EngineUnsupported` when ``config`` asks ``generate`` for a logits
    processor that plain argmax decoding would skip (a repetition penalty, ...)."""
    for name, defaults in _PROCESSOR_DEFAULTS.items():
        value = getattr(config, name, None)
        if value not in defaults:
            raise EngineUnsupported(f"generation_config.{name}={value!r} needs model.generate's logits processors")


def shared_prefix_len(prompts: Sequence[Sequence[int]]) -> int:
    """Tokens every prompt starts with, leaving at least one token of each prompt to prefill."""
    if not prompts:
        return 0
    first = prompts[0]
    n = min(len(p) for p in prompts) - 1
    for p in prompts[1:]:
        i = 0
        while i < n and p[i] == first[i]:
            i += 1
        n = i
    return max(n, 0)


def greedy_generate(model: Any, prompts: Sequence[Sequence[int]], **options: Any) -> list[list[int]]:
    """Greedy completions (generated ids, the ending token included) of token-id ``prompts``,
    in prompt order: :func:`iter_greedy` (same keyword options) collected."""
    results: list[list[int]] = [[] for _ in prompts]
    for i, ids in iter_greedy(model, prompts, **options):
        results[i] = ids
    return results


def waiting_order(lengths: Sequence[int], group: int | None = None) -> list[int]:
    """The order prompts enter the batch: longest first (rows prefilled together then need
    little padding), within consecutive blocks of ``group`` prompts taken block by block
    (so block k is finished, give or take a few rows, before block k + 2 starts)."""
    n = len(lengths)
    size = n if not group or group <= 0 else group
    order: list[int] = []
    for b in range(0, n, max(size, 1)):
        order.extend(sorted(range(b, min(b + size, n)), key=lambda i: -lengths[i]))
    return order


def iter_greedy(
    model: Any,
    prompts: Sequence[Sequence[int]],
    *,
    slots: int,
    max_new_tokens: int,
    end_ids: set[int],
    pad_id: int,
    should_stop: Callable[[Sequence[int], list[int]], bool] | None = None,
    min_shared_prefix: int = MIN_SHARED_PREFIX_TOKENS,
    refill_min: int | None = None,
    group: int | None = None,
) -> Iterator[tuple[int, list[int]]]:
    """``(prompt index, generated ids)`` for each prompt as soon as its row ends.

    ``end_ids`` end a row when generated (EOS, and padding); ``should_stop(prompt, ids)``
    is asked after each new token of a row and ends it when true (stop strings). Free slots
    are refilled as :class:`GreedyEngine` says (``refill_min``), in :func:`waiting_order` (``group``). Raises :class:`EngineUnsupported` before yielding
    anything when the model's cache is not a plain dynamic KV cache.

    A :class:`GreedyEngine` given every prompt up front, stepped until it is idle.
    """
    if not prompts:
        return
    if max_new_tokens <= 0:
        yield from ((i, []) for i in range(len(prompts)))
        return
    prefix_len = shared_prefix_len(prompts)
    engine = GreedyEngine(model, slots=slots, end_ids=end_ids, pad_id=pad_id, should_stop=should_stop,
                          refill_min=refill_min,
                          prefix=prompts[0][:prefix_len] if prefix_len >= min_shared_prefix else ())
    for i in waiting_order([len(p) for p in prompts], group):
        engine.admit(i, prompts[i], max_new_tokens)
    while engine.busy:
        yield from engine.step().finished


@dataclass(frozen=True)
class EngineStep:
    """What one :meth:`GreedyEngine.step` did (one forward pass, or nothing when idle)."""

    admitted: tuple[int, ...]
    """Keys of the waiting prompts this step prefilled into free slots."""
    tokens: tuple[tuple[int, int], ...]
    """``(key, token id)`` for every row that got a token in this step (the admitted rows'
    first tokens, or one more token of every running row). The ids are on the host when
    ``step`` returns (``.tolist()``): timestamp them then."""
    finished: tuple[tuple[int, list[int]], ...]
    """``(key, generated ids)`` of the rows that ended in this step, by key."""


_IDLE = EngineStep((), (), ())


@dataclass
class _Row:
    prompt: Sequence[int]
    max_new_tokens: int
    ids: list[int] = field(default_factory=list)


class GreedyEngine:
    """The slot-refilling greedy decoder, one forward pass per :meth:`step`; prompts may be
    :meth:`admit`-ted at any time, so the waiting prompts can grow while it decodes (an
    in-process server) or all be given up front (:func:`iter_greedy`).

    Each prompt has a caller-chosen ``key`` and its own ``max_new_tokens``; waiting prompts
    enter free slots first in, first out. When: with ``refill_min``, as soon as that many
    slots are free (an in-process server passes 1: a request should not wait for company).
    Without it (the accuracy pass), by cost: a prefill is one more pass over the weights,
    which costs about one decode step however few rows it prefills, while each decode step
    with ``k`` idle slots wastes ``k / slots`` of a step. So free slots are refilled once the
    idle slot-steps since the last prefill add up to ``slots`` (a step's worth), or at once
    when the batch is empty or every waiting prompt fits. Short outputs of even length then
    end together and refill together, as a static batch would (one prefill for the lot);
    rows that end one at a time among long ones are refilled after a few steps, not held
    for the slowest row. ``prefix``: tokens every admitted prompt starts with, prefilled once
    here and copied into each new row. Not thread-safe: one thread admits and steps.
    """

    def __init__(
        self,
        model: Any,
        *,
        slots: int,
        end_ids: set[int],
        pad_id: int,
        should_stop: Callable[[Sequence[int], list[int]], bool] | None = None,
        refill_min: int | None = None,
        prefix: Sequence[int] = (),
    ) -> None:
        import torch

        self.slots = max(1, slots)
        self.refill_min = None if refill_min is None else min(self.slots, max(1, refill_min))
        self._idle_slot_steps = 0
        self._model = model
        self._end_ids = end_ids
        self._pad_id = pad_id
        self._should_stop = should_stop
        self._device = next(model.parameters()).device
        self._prefix = tuple(prefix)
        self._prefix_kv = None
        if self._prefix:
            with torch.no_grad():
                self._prefix_kv = _prefill_prefix(model, self._prefix, self._device)
        self._rows: dict[int, _Row] = {}  # waiting and running
        self._waiting: deque[int] = deque()
        self._batch: _Batch | None = None

    @property
    def running(self) -> int:
        """Rows in the batch (occupied slots)."""
        return 0 if self._batch is None else len(self._batch.rows)

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def busy(self) -> bool:
        """Whether :meth:`step` has work: prompts waiting or rows decoding."""
        return bool(self._waiting) or self._batch is not None

    def admit(self, key: int, prompt: Sequence[int], max_new_tokens: int) -> None:
        """Queue ``prompt`` (token ids) to decode up to ``max_new_tokens`` (>= 1) under ``key``."""
        if key in self._rows:
            raise ValueError(f"key {key} is already in the engine")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        n = len(self._prefix)
        if n and (len(prompt) <= n or tuple(prompt[:n]) != self._prefix):
            raise ValueError(f"the prompt must be the engine's {n}-token prefix plus at least one token")
        self._rows[key] = _Row(prompt, max_new_tokens)
        self._waiting.append(key)

    def step(self) -> EngineStep:
        """One forward pass: a prefill of waiting prompts into free slots (a prefill is one
        more pass over the weights, so a few slots are refilled at once), else one decode step
        of every running row. After it raises, call :meth:`abandon`."""
        import torch

        free = self.slots - self.running
        admitted: tuple[int, ...] = ()
        with torch.no_grad():
            if self._refill_now(free):
                self._idle_slot_steps = 0
                rows = [self._waiting.popleft() for _ in range(min(free, len(self._waiting)))]
                new, tokens = _prefill(self._model, [self._rows[k].prompt[len(self._prefix) :] for k in rows], rows,
                                       self._prefix_kv, len(self._prefix), self._pad_id, self._device)
                self._batch = new if self._batch is None else self._batch.merge(new)
                admitted = tuple(rows)
            elif self._batch is not None:
                if self._waiting:
                    self._idle_slot_steps += free
                rows = list(self._batch.rows)
                tokens = self._batch.step(self._model)
            else:
                return _IDLE
            finished = self._record(rows, tokens)
            if finished:
                assert self._batch is not None
                self._batch = self._batch.drop(finished)
        done = tuple((k, self._rows.pop(k).ids) for k in sorted(finished))
        return EngineStep(admitted, tuple(zip(rows, tokens, strict=True)), done)

    def _refill_now(self, free: int) -> bool:
        """Whether this step prefills waiting prompts into the ``free`` slots (see the class)."""
        if not self._waiting or free == 0:
            return False
        if self.refill_min is not None:
            return free >= min(self.refill_min, len(self._waiting))
        return (self._batch is None or free >= len(self._waiting)
                or self._idle_slot_steps + free > self.slots)

    def abandon(self) -> list[int]:
        """Drop every row in flight (after a failed step the batch's KV cache may be half
        updated) and return their keys; waiting prompts stay queued."""
        queued = set(self._waiting)
        lost = [k for k in self._rows if k not in queued]
        for k in lost:
            del self._rows[k]
        self._batch = None
        return lost

    def _record(self, rows: list[int], tokens: list[int]) -> set[int]:
        """Append each row's new token; the keys whose completion is now over."""
        finished = set()
        for key, tok in zip(rows, tokens, strict=True):
            row = self._rows[key]
            row.ids.append(tok)
            if (tok in self._end_ids or len(row.ids) >= row.max_new_tokens
                    or (self._should_stop is not None and self._should_stop(row.prompt, row.ids))):
                finished.add(key)
        return finished


def _check_layers(cache: Any) -> list[DynamicLayer]:
    """The cache's layers, each checked to be an initialized plain DynamicLayer."""
    from transformers.cache_utils import DynamicLayer

    layers: list[DynamicLayer] = []
    for layer in getattr(cache, "layers", None) or [None]:
        # exact type: sliding-window and quantized layers keep state we do not merge
        if type(layer) is not DynamicLayer or not getattr(layer, "is_initialized", False):
            raise EngineUnsupported(f"cache layer {type(layer).__name__} is not a plain DynamicLayer")
        layers.append(layer)
    return layers


def _forward(model: Any, **kwargs: Any) -> Any:
    try:
        return model(**kwargs, use_cache=True, logits_to_keep=1)
    except TypeError as exc:  # a forward without logits_to_keep / past_key_values
        raise EngineUnsupported(f"forward: {exc}") from exc


def _prefill_prefix(model: Any, ids: Sequence[int], device: Any) -> list[tuple[Any, Any]]:
    """Each layer's (keys, values) for the shared prefix, batch of one."""
    import torch
    from transformers import DynamicCache

    cache = DynamicCache()
    input_ids = torch.tensor([list(ids)], device=device)
    _forward(model, input_ids=input_ids, attention_mask=torch.ones_like(input_ids), past_key_values=cache)
    return [(layer.keys, layer.values) for layer in _check_layers(cache)]


def _prefill(model, suffixes, rows, prefix_kv, prefix_len, pad_id, device):
    """Prefill ``suffixes`` (after the shared prefix) as a new left-padded batch; its first tokens."""
    import torch
    from transformers import DynamicCache

    n = len(suffixes)
    width = max(len(s) for s in suffixes)
    ids = torch.full((n, width), pad_id, dtype=torch.long)
    mask = torch.zeros((n, width), dtype=torch.long)
    for r, s in enumerate(suffixes):
        ids[r, width - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[r, width - len(s) :] = 1
    ids, mask = ids.to(device), mask.to(device)
    if prefix_kv is not None:
        # each new row gets its own copy of the prefix KV (update() concatenates, i.e. copies)
        cache = DynamicCache(ddp_cache_data=[(k.expand(n, -1, -1, -1), v.expand(n, -1, -1, -1)) for k, v in prefix_kv])
        mask = torch.cat([torch.ones((n, prefix_len), dtype=torch.long, device=device), mask], dim=1)
    else:
        cache = DynamicCache()
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)[:, -width:]
    out = _forward(model, input_ids=ids, attention_mask=mask, position_ids=positions, past_key_values=cache)
    _check_layers(cache)
    first = out.logits[:, -1].float().argmax(-1)
    batch = _Batch(cache=cache, mask=mask, last=first, next_pos=positions[:, -1] + 1, rows=list(rows))
    return batch, first.tolist()


class _Batch:
    """The rows decoding together: their KV cache, attention mask and next input."""

    def __init__(self, cache: Any, mask: Any, last: Any, next_pos: Any, rows: list[int]) -> None:
        self.cache = cache
        self.mask = mask  # [rows, cached columns]; 0 = padding
        self.last = last  # [rows] the token to feed next
        self.next_pos = next_pos  # [rows] its position id
        self.rows = rows  # prompt index of each row

    def step(self, model: Any) -> list[int]:
        import torch

        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.rows), 1))], dim=1)
        out = _forward(model, input_ids=self.last[:, None], attention_mask=self.mask,
                       position_ids=self.next_pos[:, None], past_key_values=self.cache)
        self.last = out.logits[:, -1].float().argmax(-1)
        self.next_pos = self.next_pos + 1
        return self.last.tolist()

    def drop(self, finished: set[int]) -> _Batch | None:
        """This batch without the ``finished`` rows (``None`` when none is left)."""
        import torch

        keep = [r for r, i in enumerate(self.rows) if i not in finished]
        if not keep:
            return None
        index = torch.tensor(keep, device=self.mask.device)
        mask = self.mask[index]
        # columns that are padding in every remaining row are dead weight: cut them
        start = int((mask.sum(0) > 0).nonzero()[0, 0])
        for layer in self.cache.layers:
            layer.keys = layer.keys[index, :, start:]
            layer.values = layer.values[index, :, start:]
        return _Batch(self.cache, mask[:, start:], self.last[index], self.next_pos[index],
                      [self.rows[r] for r in keep])

    def merge(self, other: _Batch) -> _Batch:
        """One batch of both: the shorter cache left-padded (masked) to the longer one."""
        import torch
        import torch.nn.functional as F

        width = max(self.mask.shape[1], other.mask.shape[1])

        def pad(t: Any, dim_from_end: int) -> Any:
            missing = width - t.shape[-dim_from_end]
            if missing == 0:
                return t
            spec = [0, 0] * (dim_from_end - 1) + [missing, 0]
            return F.pad(t, spec)

        for mine, theirs in zip(self.cache.layers, other.cache.layers, strict=True):
            mine.keys = torch.cat([pad(mine.keys, 2), pad(theirs.keys, 2)], dim=0)
            mine.values = torch.cat([pad(mine.values, 2), pad(theirs.values, 2)], dim=0)
        return _Batch(
            self.cache,
            torch.cat([pad(self.mask, 1), pad(other.mask, 1)], dim=0),
            torch.cat([self.last, other.last]),
            torch.cat([self.next_pos, other.next_pos]),
            self.rows + other.rows,
        )
