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
examples) that prefix is prefilled once and its KV copied into each new row. With
``speculate``, a decode pass may also check prompt-lookup drafts (:func:`prompt_lookup`,
:meth:`_Batch.verify`): rows then gain several tokens in one pass, the very ones greedy
decoding gives, when the draft is worth its cost (:func:`draft_width`).
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

MIN_SHARED_PREFIX_TOKENS = 1
"""A prefix every prompt shares is prefilled once, however short: it costs one pass of a few
tokens, and saves that many tokens of every row's prefill (on the 2-core CPU a prefill token
costs ~6 ms; the 5 tokens of ``Question: What is`` made a 120-sum accuracy pass 1.13x faster)."""


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
    speculate: int = 0,
) -> Iterator[tuple[int, list[int]]]:
    """``(prompt index, generated ids)`` for each prompt as soon as its row ends.

    ``end_ids`` end a row when generated (EOS, and padding); ``should_stop(prompt, ids)``
    is asked after each new token of a row and ends it when true (stop strings). Free slots
    are refilled as :class:`GreedyEngine` says (``refill_min``), in :func:`waiting_order`
    (``group``); ``speculate``: see :meth:`GreedyEngine._drafts`. Raises
    :class:`EngineUnsupported` before yielding anything when the model's cache is not a plain
    dynamic KV cache.

    A :class:`GreedyEngine` given every prompt up front, stepped until it is idle.
    """
    if not prompts:
        return
    if max_new_tokens <= 0:
        yield from ((i, []) for i in range(len(prompts)))
        return
    prefix_len = shared_prefix_len(prompts)
    engine = GreedyEngine(model, slots=slots, end_ids=end_ids, pad_id=pad_id, should_stop=should_stop,
                          refill_min=refill_min, speculate=speculate,
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
    """``(key, token id)`` for every token a row got in this step, in order (the admitted rows'
    first tokens, or one more token of every running row; with ``speculate``, a row may get
    several). The ids are on the host when ``step`` returns (``.tolist()``): timestamp them then."""
    finished: tuple[tuple[int, list[int]], ...]
    """``(key, generated ids)`` of the rows that ended in this step, by key."""


_IDLE = EngineStep((), (), ())


@dataclass
class _Row:
    prompt: Sequence[int]
    max_new_tokens: int
    ids: list[int] = field(default_factory=list)
    grams: dict[tuple[int, ...], int] = field(default_factory=dict)
    """Prompt lookup: each n-gram of the context (:data:`LOOKUP_NGRAMS`) -> where its latest
    occurrence ends, for the context up to ``indexed`` tokens."""
    indexed: int = 0


DRAFT_TOKEN_COST = 0.15
"""What one more token per row adds to a decode pass, as a fraction of a plain pass: 0.09-0.18
measured on the 2-core CPU (SmolLM2-135M, 6-8 rows; more with longer contexts). A GPU's is far
lower, so there this errs towards plain passes."""


def draft_width(lengths: Sequence[int], acceptance: float) -> int:
    """How many draft tokens per row this pass should check (0: a plain pass). Every row pays
    for the widest draft (the batch is a dense tensor), and a row's ``i``-th draft token counts
    only if the ones before it were taken, about ``acceptance ** i``. So the width ``w`` is the
    one maximising expected tokens ``sum(1 + acceptance + ... + acceptance ** min(w, len))``
    per cost ``1 + DRAFT_TOKEN_COST * w``; a plain pass gives one token a row at cost 1.
    ``acceptance``: the share of draft tokens taken so far (deterministic: the schedule, and
    so the batch shapes, depend on the prompts alone)."""
    rows = len(lengths)
    if not rows or not any(lengths):
        return 0
    best_width, best_rate = 0, float(rows)
    for width in range(1, max(lengths) + 1):
        tokens = sum(1 + sum(acceptance ** i for i in range(1, min(width, n) + 1)) for n in lengths)
        rate = tokens / (1 + DRAFT_TOKEN_COST * width)
        if rate > best_rate:
            best_width, best_rate = width, rate
    return best_width


LOOKUP_NGRAMS = (3, 2)
"""Prompt lookup matches the context's last 3 tokens, else its last 2, against earlier text."""


def prompt_lookup(row: _Row, limit: int) -> list[int]:
    """Up to ``limit`` tokens that followed the latest earlier occurrence of the row's last
    n-gram in its own prompt and completion (longest n first); ``[]`` when there is none.
    Greedy decoding often copies (a number from the question, a span of the note into JSON):
    such a draft is then checked in one pass instead of generated one pass per token."""
    if limit <= 0:
        return []
    context = [*row.prompt, *row.ids]
    end = len(context)
    grams = row.grams
    for stop in range(max(row.indexed, 1), end):  # n-grams ending before the last token's end
        for n in LOOKUP_NGRAMS:
            if stop >= n:
                grams[tuple(context[stop - n : stop])] = stop
    row.indexed = end
    for n in LOOKUP_NGRAMS:
        if end > n:
            found = grams.get(tuple(context[end - n :]))
            if found is not None:
                return context[found : found + limit]
    return []


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
        speculate: int = 0,
    ) -> None:
        import torch

        self.slots = max(1, slots)
        self.speculate = max(0, speculate)
        self.drafted = 0
        """Draft tokens checked so far (prompt lookup, ``speculate`` > 0)."""
        self.accepted = 0
        """Of them, the ones greedy decoding agreed with: tokens gained without a pass of their own."""
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
                emitted = [[t] for t in tokens]
            elif self._batch is not None:
                if self._waiting:
                    self._idle_slot_steps += free
                rows = list(self._batch.rows)
                drafts = self._drafts(rows)
                if drafts is not None:
                    emitted = self._batch.verify(self._model, drafts)
                    self.drafted += sum(map(len, drafts))
                    self.accepted += sum(len(e) - 1 for e in emitted)
                else:
                    emitted = [[t] for t in self._batch.step(self._model)]
            else:
                return _IDLE
            recorded, finished = self._record(rows, emitted)
            if finished:
                assert self._batch is not None
                self._batch = self._batch.drop(finished)
        done = tuple((k, self._rows.pop(k).ids) for k in sorted(finished))
        return EngineStep(admitted, tuple(recorded), done)

    def _drafts(self, rows: list[int]) -> list[list[int]] | None:
        """Each row's prompt-lookup draft for this step, cut to the width that promises the most
        tokens per unit of pass cost (see :func:`draft_width`), or ``None`` for a plain step."""
        if not self.speculate:
            return None
        drafts = []
        for key in rows:
            row = self._rows[key]
            drafts.append(prompt_lookup(row, min(self.speculate, row.max_new_tokens - len(row.ids) - 1)))
        width = draft_width([len(d) for d in drafts], (self.accepted + 1) / (self.drafted + 2))
        return [d[:width] for d in drafts] if width else None

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

    def _record(self, rows: list[int], emitted: list[list[int]]) -> tuple[list[tuple[int, int]], set[int]]:
        """Append each row's new tokens, up to the one that ends it: ``(key, token)`` of every
        token kept, and the keys whose completion is now over."""
        recorded: list[tuple[int, int]] = []
        finished = set()
        for key, tokens in zip(rows, emitted, strict=True):
            row = self._rows[key]
            for tok in tokens:
                row.ids.append(tok)
                recorded.append((key, tok))
                if (tok in self._end_ids or len(row.ids) >= row.max_new_tokens
                        or (self._should_stop is not None and self._should_stop(row.prompt, row.ids))):
                    finished.add(key)
                    break
        return recorded, finished


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


def _forward(model: Any, keep: int = 1, **kwargs: Any) -> Any:
    try:
        return model(**kwargs, use_cache=True, logits_to_keep=keep)
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

    def verify(self, model: Any, drafts: Sequence[Sequence[int]]) -> list[list[int]]:
        """One pass that feeds each row its next token followed by its draft, and keeps the
        draft's longest prefix greedy decoding agrees with, plus the token after it: 1 to
        ``len(draft) + 1`` new tokens per row, each the one a plain step would have produced.

        Columns of rejected draft tokens (and of the padding after a shorter draft) stay in the
        KV cache, masked as padding: positions come from ``next_pos``, not from the columns."""
        import torch

        n, width = len(self.rows), 1 + max(len(d) for d in drafts)
        ids = self.last[:, None].repeat(1, width)
        valid = self.mask.new_zeros((n, width))
        valid[:, 0] = 1
        for r, draft in enumerate(drafts):
            if draft:
                ids[r, 1 : 1 + len(draft)] = torch.tensor(draft, dtype=ids.dtype)
                valid[r, 1 : 1 + len(draft)] = 1
        base = self.mask.shape[1]
        self.mask = torch.cat([self.mask, valid], dim=1)
        positions = self.next_pos[:, None] + torch.arange(width, device=self.next_pos.device)
        out = _forward(model, keep=width, input_ids=ids, attention_mask=self.mask, position_ids=positions,
                       past_key_values=self.cache)
        greedy = out.logits[:, -width:].float().argmax(-1).tolist()
        new: list[list[int]] = []
        for r, draft in enumerate(drafts):
            m = 0
            while m < len(draft) and draft[m] == greedy[r][m]:
                m += 1
            new.append(greedy[r][: m + 1])
            self.mask[r, base + 1 + m :] = 0  # the rejected tail: never attended to again
        self.last = torch.tensor([tokens[-1] for tokens in new], dtype=self.last.dtype, device=self.last.device)
        self.next_pos = self.next_pos + torch.tensor([len(tokens) for tokens in new], device=self.next_pos.device)
        return new

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
