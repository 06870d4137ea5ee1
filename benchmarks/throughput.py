"""Accuracy-pass throughput vs a plain batched ``model.generate`` loop, side by side.

Both sides generate greedily for the same prompts with the same batch size and
max_new_tokens, on the same loaded model, interleaved (plain, qeval, plain,
qeval, ...) so machine noise hits both. Output tokens are counted from ids the
same way on both sides (up to and including EOS). Prints tokens/s of each
round and the ratio qeval / plain (target >= 0.9).

    .venv/bin/python benchmarks/throughput.py --model smollm2-135m --suite suites/arithmetic --limit 32
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def plain_loop(hf, prompts, batch_size, max_new_tokens):
    """What a user would write by hand: batches in the given order, left padding."""
    tok, model = hf.tokenizer, hf.model
    tokens = 0
    start = time.perf_counter()
    for b in range(0, len(prompts), batch_size):
        enc = tok(prompts[b : b + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
        for row in out[:, enc["input_ids"].shape[1] :].tolist():
            n = len(row)
            for i, t in enumerate(row):
                if t in hf._eos_ids:
                    n = i + 1
                    break
            tokens += n
    return tokens, time.perf_counter() - start


def main() -> None:
    from qeval.evaluate import accuracy_pass, build_prompts
    from qeval.models import resolve_model
    from qeval.quantize import quiet
    from qeval.suites import load_suite

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--suite", default="suites/arithmetic")
    parser.add_argument("--limit", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()

    suite = load_suite(args.suite).limited(args.limit)
    with quiet():
        loaded = resolve_model(args.model).load(args.precision, "cpu")
    hf = loaded.model
    settings = suite.generation
    prompts = build_prompts(hf, suite)
    print(f"model={args.model} precision={args.precision} suite={suite.name} cases={len(prompts)} "
          f"batch={settings.batch_size} max_new_tokens={settings.max_new_tokens} threads={torch.get_num_threads()}")
    plain_loop(hf, prompts[: settings.batch_size], settings.batch_size, 4)  # warm-up, untimed

    ratios = []
    for r in range(args.rounds):
        # ABBA order: whichever side runs second in a round runs first in the next.
        if r % 2 == 0:
            p_tokens, p_s = plain_loop(hf, prompts, settings.batch_size, settings.max_new_tokens)
            acc = accuracy_pass(hf, suite, settings)
        else:
            acc = accuracy_pass(hf, suite, settings)
            p_tokens, p_s = plain_loop(hf, prompts, settings.batch_size, settings.max_new_tokens)
        p_tps, q_tps = p_tokens / p_s, acc.output_tokens / acc.wall_s
        ratios.append(q_tps / p_tps)
        print(f"round {r + 1}: plain {p_tokens} tok in {p_s:.2f} s = {p_tps:.1f} tok/s | "
              f"qeval {acc.output_tokens} tok in {acc.wall_s:.2f} s = {q_tps:.1f} tok/s | ratio {ratios[-1]:.3f}")
    print(f"ratio qeval/plain: median {statistics.median(ratios):.3f} over {len(ratios)} rounds (target >= 0.9)")


if __name__ == "__main__":
    main()
