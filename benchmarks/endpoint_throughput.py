"""qeval's endpoint accuracy pass vs a plain async client vs lm-eval, on one real vLLM server.

One vLLM server (CPU build, fp32, greedy: ``tests/servers/vllm.py``) serves the bundled
SmolLM2-135M. Every arm sends the same prompts (``--limit`` cases of ``--suite``, evenly spaced
as ``Suite.limited`` picks them), the suite's max tokens and stop strings, temperature 0, at
most ``--concurrency`` requests in flight:

* **qeval**: :func:`qeval.evaluate.accuracy_pass` on ``EndpointTarget(...).provision("cpu")``
  (streams with ``stream_options.include_usage``, seed 0), timed whole, scoring included;
  ``gen`` is the pass's own generation time, so ``wall - gen`` is prompts + scoring.
* **plain**: the very bodies qeval sends (``_openai_stream.request_body``), posted by ``httpx.AsyncClient``
  under ``asyncio.Semaphore(concurrency)``, each stream read to its end: the server's own
  limit. Target: qeval >= 0.9x its throughput.
* **lm-eval** 0.4.13 (``.venv-lmeval``, a fresh subprocess per round): ``local-chat-completions``
  (chat suite) or ``local-completions``, ``num_concurrent=concurrency``, ``seed=0`` (its default
  is 1234), ``tokenizer_backend=None``, on a generated YAML task (``generate_until``, same
  ``until`` and ``max_gen_toks``, ``temperature: 0``) over a JSONL of the same prompt texts.
  ``wall`` is its ``generate_until``; import, task indexing and the rest of ``simple_evaluate``
  are reported apart. Its payloads are recorded and compared with qeval's bodies (it does not
  stream: one JSON body per request, over aiohttp; chat sends at most 4 stop strings); its
  output tokens are the server's ``usage``, caught by wrapping its ``parse_generations``.

After one untimed warm-up pass (the server's first requests pay one-off costs), rounds
alternate the order (q p l, l p q, ...: ABBA). Prints a table per round, medians, the ratios
qeval/plain and qeval/lm-eval of throughput (median, min-max over rounds) and how many
completions (as scored: cut at the stop strings) and usage counts agree with the plain client.
"client CPU s" is the client process's CPU time during the pass: on a small machine the client
shares the CPUs with the server, so its overhead costs twice.

    make .venv-vllm/.vllm-installed     # vLLM, once
    python3 -m venv .venv-lmeval && .venv-lmeval/bin/pip install torch==2.13.0 && \
        .venv-lmeval/bin/pip install "lm-eval[api]==0.4.13"   # [api]: without tenacity it refuses
    .venv/bin/python benchmarks/endpoint_throughput.py --rounds 2 [--limit 64] [--skip-lmeval]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LMEVAL_VENV = Path(os.environ.get("QEVAL_LMEVAL_VENV") or REPO / ".venv-lmeval")
LMEVAL_PYTHON = LMEVAL_VENV / "bin" / "python"


@dataclass(frozen=True)
class Run:  # one arm of one round
    arm: str
    wall_s: float
    requests: int
    output_tokens: int
    cpu_s: float  # client CPU time (all threads) while it ran: taken from the server on a small machine
    completions: tuple[str, ...] = ()  # in suite order, cut at the stop strings
    tokens_each: tuple[int, ...] = ()
    gen_s: float | None = None  # qeval: the pass's generation time; lm-eval: = wall_s
    aside_s: float | None = None  # qeval: prompts + scoring; lm-eval: the rest of its process
    note: str = ""

    @property
    def rps(self) -> float:
        return self.requests / self.wall_s

    @property
    def tps(self) -> float:
        return self.output_tokens / self.wall_s


_MEDIAN_FIELDS = ("wall_s", "requests", "output_tokens", "cpu_s")


@dataclass(frozen=True)
class Round:
    order: tuple[str, ...]
    runs: tuple[Run, ...]  # qeval, plain[, lm-eval]

    def of(self, arm: str) -> Run:
        return next(r for r in self.runs if r.arm == arm)


@dataclass(frozen=True)
class Workload:
    url: str  # base URL (.../v1)
    model: str  # served model name
    chat: bool
    texts: tuple[str, ...]  # user texts (chat) or whole prompts (completions)
    system_prompt: str | None
    bodies: tuple[bytes, ...]  # exactly what qeval sends
    max_tokens: int
    stop: tuple[str, ...]
    concurrency: int


def run_qeval(work: Workload, suite, settings) -> Run:
    from qeval.evaluate import accuracy_pass
    from qeval.targets import EndpointTarget, parse_target

    loaded = EndpointTarget(parse_target(f"s=openai:{work.url}"), concurrency=work.concurrency).provision("cpu")
    try:
        cpu, start = time.process_time(), time.perf_counter()
        acc = accuracy_pass(loaded.model, suite, settings)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    finally:
        loaded.model.close()
    errors = sum(c.error is not None for c in acc.cases)
    return Run("qeval", wall, len(acc.cases), acc.output_tokens, cpu, tuple(c.completion for c in acc.cases),
               tuple(c.output_tokens for c in acc.cases), acc.wall_s, wall - acc.wall_s,
               f"{errors} errors" if errors else "")


async def _plain(work: Workload) -> Run:
    import httpx

    from qeval.evaluate import cut_at_stop

    url = work.url + ("/chat/completions" if work.chat else "/completions")
    headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
    sem = asyncio.Semaphore(work.concurrency)
    limits = httpx.Limits(max_connections=work.concurrency, max_keepalive_connections=work.concurrency)
    async with httpx.AsyncClient(timeout=httpx.Timeout(120, connect=5), limits=limits, trust_env=False) as client:

        async def one(body: bytes) -> tuple[str, int]:
            parts: list[str] = []
            tokens = 0
            async with sem, client.stream("POST", url, content=body, headers=headers) as response:
                response.raise_for_status()
                async for line in response.aiter_lines():
                    if not line.startswith("data: ") or line == "data: [DONE]":
                        continue
                    obj = json.loads(line[6:])
                    if obj.get("choices"):
                        choice = obj["choices"][0]
                        part = choice.get("delta", {}).get("content") if work.chat else choice.get("text")
                        parts.append(part or "")
                    if obj.get("usage"):
                        tokens = obj["usage"]["completion_tokens"]
            return "".join(parts), tokens

        cpu, start = time.process_time(), time.perf_counter()
        out = await asyncio.gather(*(one(b) for b in work.bodies))
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    return Run("plain", wall, len(out), sum(t for _, t in out), cpu, tuple(cut_at_stop(s, work.stop) for s, _ in out),
               tuple(t for _, t in out))


# Runs in .venv-lmeval: argv = spec.json out.json. Times import, task set-up and generate_until.
_LMEVAL_DRIVER = r"""
import json, sys, time
t0 = time.perf_counter()
import lm_eval
from lm_eval.api.registry import get_model
from lm_eval.tasks import TaskManager
spec = json.load(open(sys.argv[1]))
t_import = time.perf_counter() - t0
lm = get_model(spec["backend"])(**spec["model_args"])
seen = {"payloads": [], "tokens": 0, "gen_s": 0.0, "cpu_s": 0.0, "texts": {}}
create, parse, gen = lm._create_payload, lm.parse_generations, lm.generate_until
def _create(*a, **k):
    p = create(*a, **k); seen["payloads"].append(p); return p
def _parse(outputs, **k):
    for o in outputs if isinstance(outputs, list) else [outputs]:
        seen["tokens"] += int((o.get("usage") or {}).get("completion_tokens") or 0)
    return parse(outputs=outputs, **k)
def _gen(requests, *a, **k):
    c, s = time.process_time(), time.perf_counter(); out = gen(requests, *a, **k)
    seen["gen_s"] += time.perf_counter() - s; seen["cpu_s"] += time.process_time() - c
    for r, text in zip(requests, out):
        seen["texts"][r.doc["idx"]] = text
    return out
lm._create_payload, lm.parse_generations, lm.generate_until = _create, _parse, _gen
s = time.perf_counter()
tm = TaskManager(include_path=spec["dir"])
t_tasks, s = time.perf_counter() - s, time.perf_counter()
lm_eval.simple_evaluate(model=lm, tasks=[spec["task"]], task_manager=tm, apply_chat_template=spec["chat"],
                       system_instruction=spec["system"], log_samples=False, bootstrap_iters=0)
t_eval = time.perf_counter() - s
json.dump({"import_s": t_import, "tasks_s": t_tasks, "eval_s": t_eval, **seen}, open(sys.argv[2], "w"))
"""


def run_lmeval(work: Workload, sent: list[dict]) -> Run:
    """lm-eval in a fresh subprocess; the payloads it sent go to ``sent``."""
    with tempfile.TemporaryDirectory(prefix="qeval-lmeval-") as tmp:
        d = Path(tmp)
        with open(d / "docs.jsonl", "w") as f:
            for i, text in enumerate(work.texts):
                f.write(json.dumps({"idx": i, "text": text, "target": ""}) + "\n")
        task = {  # JSON is YAML: no escaping surprises in the stop strings
            "task": "qeval_bench", "dataset_path": "json", "test_split": "train",
            "dataset_kwargs": {"data_files": str(d / "docs.jsonl")},
            "output_type": "generate_until", "doc_to_text": "{{text}}", "doc_to_target": "{{target}}",
            "generation_kwargs": {"until": list(work.stop), "max_gen_toks": work.max_tokens,
                                  "do_sample": False, "temperature": 0},
            "metric_list": [{"metric": "exact_match"}], "num_fewshot": 0,
        }
        (d / "qeval_bench.yaml").write_text(json.dumps(task, indent=1))
        route = "/chat/completions" if work.chat else "/completions"
        spec = {"backend": "local-chat-completions" if work.chat else "local-completions",
                "model_args": {"model": work.model, "base_url": work.url + route, "num_concurrent": work.concurrency,
                               "tokenizer_backend": None, "tokenized_requests": False, "seed": 0,
                               "max_retries": 1, "timeout": 600},
                "task": "qeval_bench", "dir": str(d), "chat": work.chat, "system": work.system_prompt}
        (d / "spec.json").write_text(json.dumps(spec))
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_DATASETS_CACHE": str(d / "hf"),
               "TOKENIZERS_PARALLELISM": "false", "NO_PROXY": "127.0.0.1,localhost"}
        env.pop("PYTHONPATH", None)
        start = time.perf_counter()
        proc = subprocess.run([str(LMEVAL_PYTHON), "-c", _LMEVAL_DRIVER, str(d / "spec.json"), str(d / "out.json")],
                              env=env, cwd=tmp, capture_output=True, text=True)
        total = time.perf_counter() - start
        if proc.returncode != 0:
            sys.exit(f"lm-eval failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
        out = json.loads((d / "out.json").read_text())
    from qeval.evaluate import cut_at_stop

    texts = tuple(cut_at_stop(out["texts"][str(i)], work.stop) for i in range(len(work.texts)))
    gen = out["gen_s"]
    sent[:] = out["payloads"]
    return Run("lm-eval", gen, len(texts), out["tokens"], out["cpu_s"], texts, gen_s=gen, aside_s=total - gen,
               note=f"process {total:.1f}s: import {out['import_s']:.1f}s, task index {out['tasks_s']:.1f}s, "
                    f"simple_evaluate {out['eval_s']:.1f}s")


def payload_report(work: Workload, payloads: list[dict]) -> list[str]:
    """How lm-eval's request bodies differ from qeval's (ignoring order)."""
    ours = [json.loads(b) for b in work.bodies]
    key = "messages" if work.chat else "prompt"

    def prompt_of(p: dict) -> str:
        v = p[key]
        return json.dumps(v[0] if not work.chat and isinstance(v, list) and len(v) == 1 else v, sort_keys=True)

    same = len({prompt_of(p) for p in ours} & {prompt_of(p) for p in payloads})
    lines = [f"lm-eval sent {len(payloads)} requests; prompts identical to qeval's: {same}/{len(ours)}"]
    if payloads:
        theirs, mine = payloads[0], ours[0]
        for k in sorted(set(theirs) | set(mine)):
            if k != key and theirs.get(k) != mine.get(k):
                lines.append(f"  differs: {k}: qeval {mine.get(k, '-')!r} vs lm-eval {theirs.get(k, '-')!r}")
        order = [prompt_of(p) for p in payloads] == [prompt_of(p) for p in ours]
        lines.append(f"  request order: {'same as' if order else 'differs from'} qeval's")
    return lines


def table(runs: Sequence[Run], medians: bool = False) -> str:
    rows = [f"{'arm':8} {'wall s':>7} {'req/s':>7} {'out tok/s':>9} {'tokens':>6} {'client CPU s':>12}  detail"]
    for r in runs:
        detail = r.note
        if r.arm == "qeval" and r.gen_s is not None and r.aside_s is not None:
            detail = f"gen {r.gen_s:.2f}s, prompts+scoring {r.aside_s * 1000:.0f}ms" + (f", {r.note}" if r.note else "")
        rows.append(f"{r.arm:8} {r.wall_s:7.2f} {r.rps:7.2f} {r.tps:9.1f} {r.output_tokens:6.0f} {r.cpu_s:12.2f}  "
                    f"{'' if medians else detail}".rstrip())
    return "\n".join(rows)


def agreement(a: Run, b: Run) -> str:
    text = sum(x == y for x, y in zip(a.completions, b.completions, strict=True))
    line = f"{a.arm} vs {b.arm}: completions equal {text}/{len(a.completions)}"
    if a.tokens_each and b.tokens_each:
        line += f", usage tokens equal {sum(x == y for x, y in zip(a.tokens_each, b.tokens_each, strict=True))}"
    return line


@dataclass(frozen=True)
class _Running:  # --url: a server someone else started (and stops)
    base_url: str
    served_model_name: str = "smollm2-135m"
    startup_s: float | None = None


def lmeval_ready() -> bool:  # lm-eval and its API extras import in .venv-lmeval
    check = [str(LMEVAL_PYTHON), "-c", "import lm_eval, tenacity, aiohttp"]
    return LMEVAL_PYTHON.exists() and subprocess.run(check, capture_output=True).returncode == 0


def wait_quiet(limit: float, tries: int = 10) -> float:
    for _ in range(tries):
        if (load := os.getloadavg()[0]) <= limit:
            break
        print(f"load {load:.2f} > {limit}: waiting 30 s for a quieter machine", flush=True)
        time.sleep(30)
    return os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", default="suites/arithmetic")
    parser.add_argument("--limit", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--skip-lmeval", action="store_true")
    parser.add_argument("--max-load", type=float, default=1.5, help="wait (up to 5 min) for a lower load average")
    parser.add_argument("--url", help="use this running server (.../v1, serving smollm2-135m) instead of starting one")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    from tests.servers.vllm import VLLM_VENV, VllmServer, vllm_installed

    if not args.url and not vllm_installed():
        sys.exit(f"{VLLM_VENV} is missing or incomplete: make it with `make .venv-vllm/.vllm-installed`.")
    if not args.skip_lmeval and not lmeval_ready():
        sys.exit(f"{LMEVAL_VENV} is missing (or lacks lm-eval's API extras): make it with `python3 -m venv .venv-lmeval && "
                 ".venv-lmeval/bin/pip install torch==2.13.0 && .venv-lmeval/bin/pip install 'lm-eval[api]==0.4.13'`, "
                 "or pass --skip-lmeval.")

    from qeval.evaluate import build_prompts
    from qeval.models import BUILTINS, materialise
    from qeval.suites import load_suite
    from qeval.targets._endpoint import EndpointModel
    from qeval.targets._openai_stream import request_body

    suite = load_suite(args.suite).limited(args.limit)
    settings = suite.generation
    load = wait_quiet(args.max_load)
    print(f"load average (1 min) before start: {load:.2f}; {os.cpu_count()} CPUs shared by server and clients")
    running: contextlib.AbstractContextManager[_Running | VllmServer] = (
        contextlib.nullcontext(_Running(args.url.rstrip("/"))) if args.url else
        VllmServer(materialise(BUILTINS["smollm2-135m"]), extra_args=("--max-num-seqs", str(args.concurrency))))
    with running as server:
        print(f"vLLM ready in {server.startup_s or 0:.1f} s at {server.base_url}")
        shaper = EndpointModel(client=None, concurrency=args.concurrency)
        prompts = build_prompts(shaper, suite)
        texts = tuple(suite.render(c) for c in suite.cases) if suite.chat_template else tuple(p.text for p in prompts)
        bodies = tuple(json.dumps(request_body(shaper.request(p, settings), server.served_model_name, True)).encode()
                       for p in prompts)
        work = Workload(server.base_url, server.served_model_name, suite.chat_template, texts, suite.system_prompt,
                        bodies, settings.max_new_tokens, tuple(settings.stop), args.concurrency)
        print(f"suite {suite.name}: {len(prompts)} cases, {'chat' if work.chat else 'completions'}, "
              f"max_tokens {work.max_tokens}, stop {list(work.stop)!r}, concurrency {work.concurrency}")
        warm = asyncio.run(_plain(work))  # untimed: first-request costs of the server
        print(f"warm-up (plain, untimed): {warm.wall_s:.2f} s")

        payloads: list[dict] = []
        arms = {"qeval": lambda: run_qeval(work, suite, settings), "plain": lambda: asyncio.run(_plain(work))}
        if not args.skip_lmeval:
            arms["lm-eval"] = lambda: run_lmeval(work, payloads)
        order = tuple(arms)
        rounds: list[Round] = []
        for r in range(args.rounds):
            this = order if r % 2 == 0 else order[::-1]  # ABBA
            got = [arms[arm]() for arm in this]
            rd = Round(this, tuple(sorted(got, key=lambda x: order.index(x.arm))))
            rounds.append(rd)
            print(f"\nround {r + 1} (order {' '.join(this)}; load average after it {os.getloadavg()[0]:.2f})")
            print(table(rd.runs))
            for other in (a for a in order if a != "plain"):
                print("  " + agreement(rd.of(other), rd.of("plain")))

    print(f"\nmedians over {len(rounds)} rounds")
    print(table([Run(arm, *(statistics.median(getattr(rd.of(arm), f) for rd in rounds) for f in _MEDIAN_FIELDS))
                 for arm in order], medians=True))
    for other in order[1:]:
        ratios = [rd.of("qeval").rps / rd.of(other).rps for rd in rounds]
        tok = [rd.of("qeval").tps / rd.of(other).tps for rd in rounds]
        met = "met" if statistics.median(ratios) >= 0.9 else "MISSED"
        verdict = f" (target >= 0.90: {met})" if other == "plain" else ""
        print(f"qeval/{other} throughput: req/s median {statistics.median(ratios):.3f} "
              f"(range {min(ratios):.3f}-{max(ratios):.3f}), out tok/s median {statistics.median(tok):.3f} "
              f"(range {min(tok):.3f}-{max(tok):.3f}){verdict}")
    if payloads:
        print("\n" + "\n".join(payload_report(work, payloads)))
        print("  lm-eval does not stream (one JSON body per request, aiohttp); qeval and plain stream with usage")


if __name__ == "__main__":
    main()
