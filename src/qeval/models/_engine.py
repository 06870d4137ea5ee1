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
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
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
    are refilled once ``refill_min`` of them are free (default: a quarter of ``slots``), in
    :func:`waiting_order` (``group``). Raises :class:`EngineUnsupported` before yielding
    anything when the model's cache is not a plain dynamic KV cache.
    """
    import torch

    slots = max(1, slots)
    refill_min = min(slots, max(1, slots // 4 if refill_min is None else refill_min))
    if not prompts:
        return
    if max_new_tokens <= 0:
        yield from ((i, []) for i in range(len(prompts)))
        return
    results: list[list[int]] = [[] for _ in prompts]
    device = next(model.parameters()).device
    prefix_len = shared_prefix_len(prompts)
    prefix_kv = None
    if prefix_len >= min_shared_prefix:
        with torch.no_grad():
            prefix_kv = _prefill_prefix(model, prompts[0][:prefix_len], device)
    else:
        prefix_len = 0
    waiting = waiting_order([len(p) for p in prompts], group)
    waiting.reverse()  # pop() from the end
    batch: _Batch | None = None
    while waiting or batch is not None:
        free = slots - (0 if batch is None else len(batch.rows))
        with torch.no_grad():
            # a prefill is one more pass over the weights: refill a few slots at once
            if waiting and free >= min(refill_min, len(waiting)):
                take = [waiting.pop() for _ in range(min(free, len(waiting)))]
                new, first = _prefill(model, [prompts[i][prefix_len:] for i in take], take, prefix_kv, prefix_len,
                                      pad_id, device)
                batch = new if batch is None else batch.merge(new)
                finished = _record(first, take, prompts, results, max_new_tokens, end_ids, should_stop)
            else:
                assert batch is not None
                tokens = batch.step(model)
                finished = _record(tokens, batch.rows, prompts, results, max_new_tokens, end_ids, should_stop)
            if finished:
                batch = batch.drop(finished)
        for i in sorted(finished):
            yield i, results[i]


def _record(tokens, rows, prompts, results, max_new_tokens, end_ids, should_stop) -> set[int]:
    """Append each row's new token; the prompt indices whose completion is now over."""
    finished = set()
    for i, tok in zip(rows, tokens, strict=True):
        ids = results[i]
        ids.append(tok)
        if tok in end_ids or len(ids) >= max_new_tokens or (should_stop is not None and should_stop(prompts[i], ids)):
            finished.add(i)
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
