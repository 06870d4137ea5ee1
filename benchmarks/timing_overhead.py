"""Overhead of per-token timing on generation (target <= 3%).

``HFTextModel.generate_timed`` runs ``model.generate`` with the ``_TokenClock`` streamer
(a timestamp, and a CUDA sync on GPU, per token). This times the same requests with
and without that streamer: batch-1, the same prompt, the same greedy settings and stop
strings, interleaved (timed, plain, plain, timed, ...) so machine noise hits both.
Tokenization is outside both measurements. Prints the per-request medians and the
overhead ratio timed / plain - 1.

    .venv/bin/python benchmarks/timing_overhead.py --model smollm2-135m --suite suites/arithmetic --requests 8
"""

from __future__ import annotations

import argparse
import statistics
import time

TARGET = 0.03


def one(hf, prompt, settings, with_clock: bool) -> tuple[float, int]:
    import torch

    from qeval.models._hf import _sync, _TokenClock

    enc = hf.tokenizer([prompt], return_tensors="pt", add_special_tokens=False)
    enc = {k: v.to(hf.device) for k, v in enc.items()}
    kwargs = hf._gen_kwargs(settings)
    _sync(hf.device)
    start = time.perf_counter()
    if with_clock:
        kwargs["streamer"] = _TokenClock(hf.device, start)
    with torch.no_grad():
        out = hf.model.generate(**enc, **kwargs)
    _sync(hf.device)
    took = time.perf_counter() - start
    return took, out.shape[1] - enc["input_ids"].shape[1]


def main() -> None:
    from qeval.evaluate import build_prompts
    from qeval.models import resolve_model
    from qeval.quantize import quiet
    from qeval.suites import load_suite

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--suite", default="suites/arithmetic")
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    suite = load_suite(args.suite).limited(args.requests)
    with quiet():
        hf = resolve_model(args.model).load(args.precision, args.device).model
    settings = suite.generation
    prompts = [p.text for p in build_prompts(hf, suite)]
    one(hf, prompts[0], settings, True)  # warm-up (and builds the stop-string criteria), untimed
    ratios, timed_s, plain_s = [], [], []
    for i, prompt in enumerate(prompts):
        order = (True, False) if i % 2 == 0 else (False, True)
        got = {clock: one(hf, prompt, settings, clock) for clock in order}
        (t, n_t), (p, n_p) = got[True], got[False]
        assert n_t == n_p, "the streamer changed the completion"
        timed_s.append(t)
        plain_s.append(p)
        ratios.append(t / p)
        print(f"request {i}: {n_t} tokens, timed {t * 1000:.1f} ms, plain {p * 1000:.1f} ms, ratio {t / p:.3f}")
    overhead = statistics.median(ratios) - 1
    total = sum(timed_s) / sum(plain_s) - 1
    print(f"model={args.model} precision={args.precision} device={args.device} requests={len(prompts)}")
    print(f"timing overhead: median per-request {overhead:+.1%}, total {total:+.1%} "
          f"-> {'MET' if overhead <= TARGET else 'MISSED'} (target <= {TARGET:.0%})")


if __name__ == "__main__":
    main()
