"""Accuracy-pass throughput vs a plain static-batched ``model.generate`` loop, side by side.

Both sides generate greedily for the same prompts at the same batch size, with the same
max_new_tokens and stop strings, on the same loaded model, interleaved (plain, qeval,
qeval, plain, ...) so machine noise hits both. The plain loop is what the accuracy pass
did before the engine: one ``model.generate`` per ``batch_size`` prompts in suite order,
each batch running until its slowest row ends. The qeval side is
:func:`qeval.evaluate.accuracy_pass` (slot-refilling engine, :mod:`qeval.models._engine`).
Output tokens are counted the same way on both sides (up to and including EOS, or up to
the token that completes a stop string). Prints tokens/s and wall time of each round, the
ratio qeval / plain (target >= 1.5), then the batch-1 equivalence rate: each case's
completion (cut at the stop string, as scored) and output-token count from the accuracy
pass vs ``model.generate`` on that prompt alone (target >= 99%), with mismatched case ids,
and the same rate for the plain static loop: with bf16 compute (int4, int8 here) any batching
changes the rounding, so the static loop is not batch-1-identical either.

    .venv/bin/python benchmarks/throughput.py --model smollm2-135m --suite suites/arithmetic --limit 32
    .venv/bin/python benchmarks/throughput.py --model smollm2-135m --suite suites/medical --limit 32
"""

from __future__ import annotations

import argparse
import statistics
import time


def plain_loop(hf, prompts, settings):
    """What a user would write by hand: static batches in the given order, left padding."""
    tokens = 0
    start = time.perf_counter()
    for b in range(0, len(prompts), settings.batch_size):
        tokens += sum(g.output_tokens for g in hf._generate_static(prompts[b : b + settings.batch_size], settings))
    return tokens, time.perf_counter() - start


def equivalence(hf, suite, settings, acc):
    """(equal, mismatches): the accuracy pass's cases vs batch-1 ``model.generate``."""
    from qeval.evaluate import cut_at_stop

    mismatches = []
    for case in acc.cases:
        ref = hf._generate_static([case.prompt], settings)[0]
        if cut_at_stop(ref.text, settings.stop) != case.completion or ref.output_tokens != case.output_tokens:
            mismatches.append((case.case_id, ref, case))
    return len(acc.cases) - len(mismatches), mismatches


def static_equivalence(hf, suite, settings, acc) -> int:
    """How many of the plain static loop's completions equal batch-1 ``model.generate``'s."""
    from qeval.evaluate import build_prompts

    prompts = [p.text for p in build_prompts(hf, suite)]
    size = settings.batch_size
    static = [g for b in range(0, len(prompts), size) for g in hf._generate_static(prompts[b : b + size], settings)]
    one = [hf._generate_static([p], settings)[0] for p in prompts]
    return sum(a.text == b.text and a.output_tokens == b.output_tokens for a, b in zip(static, one))


def main() -> None:
    import torch

    from qeval.evaluate import accuracy_pass, build_prompts, chunk_size
    from qeval.models import resolve_model
    from qeval.quantize import quiet
    from qeval.suites import load_suite

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--suite", default="suites/arithmetic")
    parser.add_argument("--limit", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--check", choices=("both", "throughput", "equivalence"), default="both",
                        help="on a slow machine run the two halves as separate commands")
    args = parser.parse_args()

    from dataclasses import replace

    if args.threads:
        torch.set_num_threads(args.threads)
    suite = load_suite(args.suite).limited(args.limit)
    with quiet():
        loaded = resolve_model(args.model).load(args.precision, "cpu")
    hf = loaded.model
    settings = suite.generation if args.batch_size is None else replace(suite.generation, batch_size=args.batch_size)
    prompts = [p.text for p in build_prompts(hf, suite)]
    print(f"model={args.model} precision={args.precision} suite={suite.name} cases={len(prompts)} "
          f"batch={settings.batch_size} chunk={chunk_size(hf, settings)} max_new_tokens={settings.max_new_tokens} "
          f"stop={settings.stop!r} threads={torch.get_num_threads()}")
    hf._generate_static(prompts[: settings.batch_size], replace(settings, max_new_tokens=4))  # warm-up, untimed

    ratios = []
    acc = None
    for r in range(args.rounds if args.check != "equivalence" else 0):
        # ABBA order: whichever side runs second in a round runs first in the next.
        if r % 2 == 0:
            p_tokens, p_s = plain_loop(hf, prompts, settings)
            acc = accuracy_pass(hf, suite, settings)
        else:
            acc = accuracy_pass(hf, suite, settings)
            p_tokens, p_s = plain_loop(hf, prompts, settings)
        p_tps, q_tps = p_tokens / p_s, acc.output_tokens / acc.wall_s
        ratios.append(q_tps / p_tps)
        print(f"round {r + 1}: plain {p_tokens} tok in {p_s:.2f} s = {p_tps:.1f} tok/s | "
              f"qeval {acc.output_tokens} tok in {acc.wall_s:.2f} s = {q_tps:.1f} tok/s | "
              f"ratio {ratios[-1]:.3f} (wall {p_s / acc.wall_s:.3f}x)")
    if ratios:
        print(f"ratio qeval/plain tokens/s: median {statistics.median(ratios):.3f} over {len(ratios)} rounds "
              f"(target >= 1.5)")
    if args.check == "throughput":
        return
    if acc is None:
        acc = accuracy_pass(hf, suite, settings)

    equal, mismatches = equivalence(hf, suite, settings, acc)
    print(f"batch-1 equivalence: {equal}/{len(acc.cases)} = {equal / len(acc.cases):.1%} (target >= 99%)")
    static = static_equivalence(hf, suite, settings, acc)
    print(f"  for comparison, the plain static loop: {static}/{len(acc.cases)} = {static / len(acc.cases):.1%} "
          "identical to batch-1")
    for case_id, ref, case in mismatches:
        print(f"  mismatch {case_id}: batch-1 {ref.output_tokens} tok {ref.text!r} | "
              f"qeval {case.output_tokens} tok {case.completion!r}")


if __name__ == "__main__":
    main()
