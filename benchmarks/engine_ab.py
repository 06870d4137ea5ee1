"""The accuracy pass's engine against variants of itself, in one process, rounds alternating
(A B, then B A): what a change to ``qeval.models._engine`` buys, without the process-to-process
noise of ``benchmarks/accuracy_pass.py`` (up to 20% there). Also the forward-pass cost curve the
engine's choices rest on (``--curve``).

Variants (comma-separated; ``+`` combines): ``plain`` (no speculation, as in-process load levels
run), ``spec4`` (up to 4 prompt-lookup draft tokens a row, the accuracy pass's default),
``min16`` (share a prefix only from 16 tokens, the old rule), ``weightfirst`` (float32 linear
layers compute ``(W @ xᵀ)ᵀ``, as the accuracy pass now does: ``qeval.models._weight_first``), ``static`` (``model.generate`` on
static batches in suite order, the engine's fallback). Printed per run: seconds, forward passes,
rows and tokens fed, time in forward, time in multi-token passes (prefills and draft checks),
draft tokens checked and taken; then per variant the median, its speed-up over the first
variant, and how many completions equal the first variant's.

    .venv/bin/python benchmarks/engine_ab.py prefix plain,spec4 --rounds 2
    .venv/bin/python benchmarks/engine_ab.py short min16,plain --items 120
    .venv/bin/python benchmarks/engine_ab.py --curve

Measured on the 2-core CPU machine, SmolLM2-135M fp32, batch 8 (speed-up over the first variant;
completions identical in every run):

| workload | variants | speed-up | passes | drafts taken |
|---|---|---|---|---|
| short (120 sums) | min16 → min3 (shared prefix of 5 tokens) | 1.13x | 94 → 95 (prefill tokens 2146 → 1551) | |
| uneven (arithmetic) | plain → spec4 (fixed width 4) | 0.95x | 150 → 116 | |
| uneven (arithmetic) | plain → spec4 (adaptive width) | 1.02x | 150 → 127 | 154 / 288 |
| prefix (medical) | plain → spec4 (adaptive width) | 1.22x | 371 → 218 | 1195 / 1912 |
| short (150 sums) | spec4 → spec4+weightfirst | 1.50x | 125 → 125 | |
| uneven (arithmetic) | spec4 → spec4+weightfirst | 1.47x (round 1; round 2's spec4 ran beside a test) | 127 → 127 | 154 / 288 |
| prefix (medical) | spec4 → spec4+weightfirst | 1.22x (one round) | 218 → 218 | 1195 / 1912 |

Forward cost (``--curve``): one token a row with 40 cached, 1 row 93 ms, 8 rows 251 ms, 16 rows
303 ms, 64 rows 565 ms; 8 rows x 5 tokens 343 ms, x 9 tokens 494 ms; a prefill of 8 x 18 tokens
930 ms. A pass is mostly reading the weights (540 MB): rows and tokens added to it are cheap but
not free, which is what ``_engine.DRAFT_TOKEN_COST`` (0.15 of a pass per draft token a row) says.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def load(model: str) -> Any:
    from qeval.models import resolve_model
    from qeval.quantize import quiet

    with quiet():
        return resolve_model(model).load("fp32", "cpu").model


def suite_dir(workload: str, items: int, tmp: Path) -> Path:
    from benchmarks.accuracy_pass import short_suite

    if workload == "short":
        return short_suite(tmp / "short", items)
    return ROOT / "suites" / {"uneven": "arithmetic", "prefix": "medical"}[workload]


def run(m: Any, prompts: list[str], ids: list[list[int]], generation: Any, variant: str) -> tuple[float, dict, dict]:
    """One variant's pass: seconds, completions by index, and what the engine did."""
    import torch

    from qeval.models import _engine

    options: dict[str, Any] = {"speculate": 0}
    for part in variant.split("+"):
        if part.startswith("min"):
            options["min_shared_prefix"] = int(part[3:])
        elif part.startswith("spec"):
            options["speculate"] = int(part[4:])
    counts = {"passes": 0, "rows": 0, "tokens": 0, "forward_s": 0.0, "wide_s": 0.0}
    forward, init = _engine._forward, _engine.GreedyEngine.__init__
    engines: list[Any] = []

    def counted(model: Any, keep: int = 1, **kw: Any) -> Any:
        start = time.perf_counter()
        out = forward(model, keep, **kw)
        took = time.perf_counter() - start
        counts["passes"] += 1
        counts["rows"] += kw["input_ids"].shape[0]
        counts["tokens"] += kw["input_ids"].numel()
        counts["forward_s"] += took
        counts["wide_s"] += took if kw["input_ids"].shape[1] > 1 else 0.0
        return out

    def kept(self: Any, *a: Any, **kw: Any) -> None:
        init(self, *a, **kw)
        engines.append(self)

    _engine._forward, _engine.GreedyEngine.__init__ = counted, kept  # type: ignore[method-assign]
    from qeval.models._weight_first import WeightFirstLinears, weight_first_linears

    weight_first = weight_first_linears(m.model) if "weightfirst" in variant.split("+") else WeightFirstLinears([])
    try:
        start = time.perf_counter()
        if variant == "static":
            out = {}
            for b in range(0, len(prompts), generation.batch_size):
                for j, gen in enumerate(m._generate_static(prompts[b : b + generation.batch_size], generation)):
                    out[b + j] = gen.text
        else:
            got = dict(_engine.iter_greedy(m.model, ids, slots=generation.batch_size,
                                           max_new_tokens=generation.max_new_tokens,
                                           **m._engine_options(tuple(generation.stop)), **options))
        took = time.perf_counter() - start
    finally:
        weight_first.restore()
        _engine._forward, _engine.GreedyEngine.__init__ = forward, init  # type: ignore[method-assign]
    if variant != "static":
        out = {i: m._count_and_decode(torch.tensor(v, dtype=torch.long))[0] for i, v in got.items()}
    if engines:
        counts["drafted"], counts["accepted"] = engines[0].drafted, engines[0].accepted
    return took, out, counts


def curve(m: Any) -> None:
    """Forward cost by rows x new tokens over a cache (random ids: the cost does not depend on them)."""
    import torch
    from transformers import DynamicCache

    for rows, new, cached in [(1, 1, 40), (8, 1, 40), (16, 1, 40), (32, 1, 40), (64, 1, 40), (8, 2, 40), (8, 5, 40),
                              (8, 9, 40), (8, 1, 200), (8, 5, 200), (8, 18, 0), (32, 18, 0)]:
        times = []
        for _ in range(5):
            cache = DynamicCache()
            with torch.no_grad():
                if cached:
                    m.model(input_ids=torch.randint(100, 1000, (rows, cached)), past_key_values=cache, use_cache=True,
                            logits_to_keep=1)
                ids = torch.randint(100, 1000, (rows, new))
                mask = torch.ones(rows, cached + new, dtype=torch.long)
                start = time.perf_counter()
                m.model(input_ids=ids, attention_mask=mask, past_key_values=cache, use_cache=True, logits_to_keep=new)
                times.append(time.perf_counter() - start)
        ms = statistics.median(times) * 1000
        print(f"rows {rows:3d} x {new:2d} new tokens over {cached:3d} cached: {ms:7.1f} ms, "
              f"{ms / (rows * new):6.2f} ms a token", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workload", nargs="?", choices=("short", "uneven", "prefix"), default="prefix")
    parser.add_argument("variants", nargs="?", default="plain,spec4")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--items", type=int, default=120, help="sums in the short workload")
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--curve", action="store_true", help="print the forward cost curve instead")
    a = parser.parse_args()

    from qeval.evaluate import build_prompts
    from qeval.models._engine import shared_prefix_len
    from qeval.suites import load_suite

    m = load(a.model)
    if a.curve:
        curve(m)
        return
    variants = a.variants.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        suite = load_suite(str(suite_dir(a.workload, a.items, Path(tmp))))
        prompts = [p.text for p in build_prompts(m, suite)]
    ids = m.tokenizer(prompts, add_special_tokens=False).input_ids
    print(f"{a.workload}: {len(ids)} prompts, {statistics.mean(map(len, ids)):.1f} tokens on average, "
          f"{shared_prefix_len(ids)} shared", flush=True)
    seconds: dict[str, list[float]] = {v: [] for v in variants}
    outs: dict[str, dict] = {}
    for r in range(a.rounds):
        for v in variants if r % 2 == 0 else variants[::-1]:
            took, out, c = run(m, prompts, ids, suite.generation, v)
            seconds[v].append(took)
            outs.setdefault(v, out)
            drafts = f", drafts {c['accepted']}/{c['drafted']} taken" if "drafted" in c else ""
            print(f"round {r + 1} {v:12s} {took:7.2f} s: {c['passes']} passes, {c['rows']} rows, {c['tokens']} tokens, "
                  f"forward {c['forward_s']:.2f} s (multi-token {c['wide_s']:.2f} s){drafts}", flush=True)
    first = variants[0]
    for v in variants:
        same = sum(outs[v][i] == outs[first][i] for i in outs[first])
        print(f"{v:12s} median {statistics.median(seconds[v]):7.2f} s, speed-up over {first} "
              f"{statistics.median(seconds[first]) / statistics.median(seconds[v]):.2f}x, "
              f"completions equal to {first}'s: {same}/{len(outs[first])}")


if __name__ == "__main__":
    main()
