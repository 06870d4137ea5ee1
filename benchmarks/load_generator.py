"""Can the load generator keep up? qeval's generator vs a plain aiohttp client, one loopback server.

The server (``tests/load/loopback.py``, its own process) streams ``--tokens`` content chunks per
completion with no delay at all: everything measured is client and loopback cost. Two arms
send the same completions, ``--concurrency`` in flight, ``--requests`` per round:

* **plain**: what ``vllm bench serve`` does (``benchmarks/lib/endpoint_request_func.py``): an
  ``aiohttp.ClientSession``, an ``asyncio.Semaphore(concurrency)``, ``async for chunk in
  response.content`` (line by line), ``json.loads`` of each ``data:`` line, TTFT at the first
  content chunk and e2e at the end, ``perf_counter`` throughout.
* **qeval**: :func:`qeval.load._driver.run_level` at ``concurrency`` users (closed loop), through
  :class:`qeval.load._client.LoadClient`: the generator exactly as ``qeval perf`` runs it, its
  loop-lag monitor included.

Rounds alternate the order (plain, qeval; qeval, plain; ...). Printed per arm: requests/s and
e2e p50/p99 (median over rounds), then qeval/plain for requests/s and qeval − plain for p99:
the generator's own cost. At concurrency 1 the difference is each request's own client cost; at
32 both clients and the server saturate the two cores and the question is requests/s. Targets
(#16): >= 500 requests/s and <= 2 ms added p99 on 2 cores.

    .venv/bin/python benchmarks/load_generator.py [--requests 3000] [--concurrency 1,32] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.load.loopback


async def plain_arm(base_url: str, model: str, n: int, concurrency: int, tokens: int) -> tuple[float, list[float]]:
    import aiohttp

    url = base_url + "/completions"
    body = {"model": model, "prompt": "hi", "max_tokens": tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    sem = asyncio.Semaphore(concurrency)
    e2e: list[float] = []
    timeout = aiohttp.ClientTimeout(total=6 * 60 * 60)

    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=concurrency)) as session:

        async def one() -> None:
            async with sem:
                start = time.perf_counter()
                ttft = 0.0
                async with session.post(url, json=body) as response:
                    async for chunk in response.content:
                        chunk = chunk.strip()
                        if not chunk:
                            continue
                        text = chunk.decode("utf-8").removeprefix("data: ")
                        if text == "[DONE]":
                            continue
                        data = json.loads(text)
                        if data["choices"] and data["choices"][0].get("text") and ttft == 0.0:
                            ttft = time.perf_counter() - start
                e2e.append((time.perf_counter() - start) * 1000.0)

        began = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        wall = time.perf_counter() - began
    return n / wall, e2e


async def qeval_arm(base_url: str, model: str, n: int, concurrency: int, tokens: int) -> tuple[float, list[float]]:
    from qeval.load._client import LoadClient
    from qeval.load._driver import Prepared, run_level
    from qeval.load._types import LoadLevel
    from qeval.models._base import Message, Prompt
    from qeval.targets._http import EndpointRequest, EndpointSettings

    class Raw:
        def __init__(self, client: LoadClient) -> None:
            self.client = client

        async def send(self, prompt: Prompt, max_tokens: int):
            return await self.client.send(EndpointRequest(messages=None, prompt=prompt.text, max_tokens=max_tokens))

    prompt = Prompt((Message("user", "hi"),), chat=False, text="hi")
    async with LoadClient(EndpointSettings(base_url, model=model), model, max_connections=concurrency) as client:
        run = await run_level(Raw(client), [Prepared(prompt, tokens)], LoadLevel("concurrency", concurrency),
                              count=n, warmup=0)
    bad = [s.error for s in run.measured if not s.ok]
    if bad:
        raise SystemExit(f"qeval arm: {len(bad)} requests failed, e.g. {bad[0]}")
    return len(run.measured) / run.wall_s, [s.e2e_ms for s in run.measured]


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


def compare(server, model: str, n: int, concurrency: int, tokens: int, rounds: int) -> None:
    results: dict[str, list[tuple[float, float, float]]] = {"plain": [], "qeval": []}
    arms = {"plain": plain_arm, "qeval": qeval_arm}
    for r in range(rounds):
        order = ["plain", "qeval"] if r % 2 == 0 else ["qeval", "plain"]
        for name in order:
            rps, e2e = asyncio.run(arms[name](server.base_url, model, n, concurrency, tokens))
            results[name].append((rps, pct(e2e, 50), pct(e2e, 99)))
            print(f"  round {r} {name:5}: {rps:7.0f} req/s  e2e p50 {pct(e2e, 50):6.2f} ms  p99 {pct(e2e, 99):6.2f} ms",
                  flush=True)
    med = {k: tuple(statistics.median(x[i] for x in v) for i in range(3)) for k, v in results.items()}
    print(f"concurrency {concurrency}, {n} requests x {rounds} rounds, {tokens} chunks each; medians over rounds:")
    for name, (rps, p50, p99) in med.items():
        print(f"  {name:5}: {rps:7.0f} req/s  e2e p50 {p50:6.2f} ms  p99 {p99:6.2f} ms")
    print(f"  qeval / plain requests/s: {med['qeval'][0] / med['plain'][0]:.2f}; qeval {med['qeval'][0]:.0f} req/s "
          f"(target >= 500: {'yes' if med['qeval'][0] >= 500 else 'NO'})")
    added = med["qeval"][2] - med["plain"][2]
    print(f"  qeval - plain: e2e p50 {med['qeval'][1] - med['plain'][1]:+.2f} ms, p99 {added:+.2f} ms "
          f"(target: <= 2 ms added p99: {'yes' if added <= 2 else 'NO'})\n", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", default="1,32", help="comma-separated levels, e.g. 1,32")
    parser.add_argument("--tokens", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args()
    from tests.load.loopback import MODEL, Loopback

    with Loopback(tokens=args.tokens) as server:
        asyncio.run(plain_arm(server.base_url, MODEL, 200, 8, args.tokens))  # warm-up, untimed
        for c in (int(x) for x in args.concurrency.split(",")):
            compare(server, MODEL, args.requests, c, args.tokens, args.rounds)


if __name__ == "__main__":
    main()
