"""An OpenAI-compatible endpoint as a target: requests in, text, usage and chunk times out.

Prompts: a suite with ``chat_template: true`` is sent to ``/v1/chat/completions`` as
messages (system prompt, then the user turn), so the server applies its own chat template;
otherwise the messages, joined as one raw prompt, go to ``/v1/completions``. A chat
prompt's recorded text is the JSON ``{"messages": [...]}`` sent: what ``samples.jsonl``
shows is exactly what went over the wire. Greedy (temperature 0), the suite's stop strings and max tokens,
seed 0.

The accuracy pass sends up to ``concurrency`` requests at a time and hands each result back as
it finishes (``generate_stream``), so chunks are journaled as they complete, like the
in-process engine's. A request that still fails after its retries is a :class:`Generation`
with ``error`` set: an ``error`` outcome, kept out of the accuracy denominator and counted in
``error_rate``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

from qeval.applied import AppliedPrecision, EndpointIdentity, EndpointUsed
from qeval.generation import GenerationSettings
from qeval.models._base import Abilities, Generation, LoadedModel, Message, Prompt, TimedGeneration, plain_text
from qeval.results import ModelCard
from qeval.targets._spec import TargetSpec

def chat_text(messages: Sequence[Message]) -> str:
    """A chat request's messages as the prompt recorded for a case: the JSON ``messages`` sent."""
    turns = [{"role": m.role, "content": m.content} for m in messages]
    return json.dumps({"messages": turns}, ensure_ascii=False)


class EndpointModel:
    """A text model backed by an :class:`qeval.targets._http.EndpointClient`."""

    device = "remote"
    abilities = Abilities(refills_slots=True, remote=True, streams_tokens=True)

    def __init__(self, client: Any, concurrency: int, seed: int | None = 0,
                 count_tokens: Callable[[str], int] | None = None) -> None:
        self._client = client
        self._count = count_tokens
        self._concurrency = max(1, int(concurrency))
        self._seed = seed
        self.fingerprints: set[str] = set()
        """Every ``system_fingerprint`` the server sent (a change mid-run means it changed under us)."""

    @property
    def client(self) -> Any:
        """The synchronous client (its settings and resolved model serve the load generator's)."""
        return self._client

    @property
    def token_counter(self) -> Callable[[str], int] | None:
        """The user's ``--tokenizer`` count, if given."""
        return self._count

    def prepare(self, messages: Sequence[Message], *, chat: bool) -> Prompt:
        text = chat_text(messages) if chat else plain_text(messages)
        return Prompt(tuple(messages), chat=chat, text=text)

    def request(self, prompt: Prompt, settings: GenerationSettings) -> Any:
        from qeval.targets._http import EndpointRequest

        return EndpointRequest(
            messages=tuple((m.role, m.content) for m in prompt.messages) if prompt.chat else None,
            prompt=None if prompt.chat else prompt.text,
            max_tokens=settings.max_new_tokens, stop=tuple(settings.stop), seed=self._seed,
        )

    def _complete(self, prompt: Prompt, settings: GenerationSettings) -> Any:
        response = self._client.complete(self.request(prompt, settings), stream=True)
        if response.system_fingerprint:
            self.fingerprints.add(response.system_fingerprint)
        return response

    def generate(self, prompts: Sequence[Prompt], settings: GenerationSettings) -> list[Generation]:
        out: list[Generation | None] = [None] * len(prompts)
        for position, gen in self.generate_stream(prompts, settings):
            out[position] = gen
        return [g for g in out if g is not None]

    def generate_stream(
        self, prompts: Sequence[Prompt], settings: GenerationSettings, group: int | None = None,
    ) -> Iterator[tuple[int, Generation]]:
        """``(position, generation)`` as each request finishes, at most ``concurrency`` in flight.

        Requests are submitted as slots free up, so closing the iterator (Ctrl-C between
        chunks) leaves at most ``concurrency`` requests to finish, never the whole suite."""
        pool = ThreadPoolExecutor(max_workers=self._concurrency, thread_name_prefix="qeval-endpoint")
        pending: dict[Future[Any], int] = {}
        nxt = 0
        try:
            while nxt < len(prompts) or pending:
                while nxt < len(prompts) and len(pending) < self._concurrency:
                    pending[pool.submit(self._complete, prompts[nxt], settings)] = nxt
                    nxt += 1
                finished, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in sorted(finished, key=lambda f: pending[f]):
                    position = pending.pop(future)
                    yield position, generation_of(future.result())
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    def generate_timed(self, prompt: Prompt, settings: GenerationSettings) -> TimedGeneration:
        return timed_of(self._complete(prompt, settings))

    def generate_timed_batch(self, prompts: Sequence[Prompt], settings: GenerationSettings) -> list[TimedGeneration]:
        """A "batch" of an endpoint is its prompts sent concurrently (times from each request's start)."""
        out: list[TimedGeneration | None] = [None] * len(prompts)
        with ThreadPoolExecutor(max_workers=max(1, len(prompts))) as pool:
            futures = {pool.submit(self._complete, p, settings): i for i, p in enumerate(prompts)}
            for future, i in futures.items():
                out[i] = timed_of(future.result())
        return [t for t in out if t is not None]

    def count_tokens(self, text: str) -> int:
        """Prompt tokens by the user's ``--tokenizer``; without one an endpoint cannot say here."""
        if self._count is None:
            raise NotImplementedError("an endpoint target counts prompt tokens only with --tokenizer")
        return self._count(text)

    def weights_bytes(self) -> int | None:
        return None  # not ours to know: never the client's memory

    def server_peak_bytes(self) -> int | None:
        """The server's peak memory, where qeval can see it (a server it started); else unknown."""
        return None

    def close(self) -> None:
        self._client.close()


def generation_of(response: Any) -> Generation:
    if response.error_kind is not None:
        return Generation(text="", output_tokens=0, error_kind=response.error_kind,
                          error=response.error or response.error_kind, attempts=len(response.attempts))
    return Generation(text=response.text, output_tokens=int(response.output_tokens or 0),
                      attempts=len(response.attempts), token_source=response.token_source)


def timed_of(response: Any) -> TimedGeneration:
    return TimedGeneration(
        text=response.text, output_tokens=int(response.output_tokens or 0), tokenize_ms=0.0,
        token_times_ms=tuple(response.content_times_ms) if response.error_kind is None else (),
        error_kind=response.error_kind, token_source=response.token_source,
        client_overhead_ms=response.client_overhead_ms,
    )


@dataclass
class EndpointTarget:
    """``NAME=openai:URL[#MODEL]``: identified (``/models``, ``/version``, ``/props``) when provisioned."""

    spec: TargetSpec
    concurrency: int = 8
    read_timeout_s: float = 120.0
    count_tokens: Callable[[str], int] | None = None
    identity: EndpointIdentity | None = None
    card: ModelCard = field(init=False)

    def __post_init__(self) -> None:
        self.card = ModelCard(
            spec=self.spec.spec, name=self.spec.served_model or "(served model)",
            source_precision="unknown: whatever the endpoint serves", parameters=None, architecture=None,
            path=None, notes="Served by an OpenAI-compatible endpoint; weights and memory are not measured by qeval.",
        )

    @property
    def description(self) -> str:
        return f"endpoint {self.spec.url}" + (f" ({self.spec.served_model})" if self.spec.served_model else "")

    def unavailable_reason(self, device: str) -> str | None:
        return None

    def settings(self) -> Any:
        from qeval.targets._http import EndpointSettings

        return EndpointSettings(
            base_url=str(self.spec.url), model=self.spec.served_model, api_key_env=self.spec.api_key_env,
            read_timeout_s=self.read_timeout_s, concurrency=self.concurrency,
        )

    def identify(self) -> EndpointIdentity:
        """Ask the endpoint what it is (raises :class:`EndpointError` within seconds when it is down)."""
        from qeval.targets._http import EndpointClient

        client = EndpointClient(self.settings(), count_tokens=self.count_tokens)
        try:
            ident = client.identify()
        finally:
            client.close()
        self.identity = ident
        self.card = ModelCard(
            spec=self.spec.spec, name=ident.model, source_precision="unknown: whatever the endpoint serves",
            parameters=None, architecture=None, path=None,
            notes=f"Served at {self.spec.url}; weights and memory are not measured by qeval.",
        )
        return self.identity

    def provision(self, device: str) -> LoadedModel:
        import socket
        import time

        from qeval.targets._http import EndpointClient

        start = time.perf_counter()
        identity = self.identity or self.identify()
        settings = self.settings()
        model = identity.model or settings.model
        from dataclasses import replace

        client = EndpointClient(replace(settings, model=model), count_tokens=self.count_tokens)
        applied = AppliedPrecision(endpoint=EndpointUsed(
            url=str(self.spec.url), served_model=model, revision=self.spec.revision,
            api_key_env=self.spec.api_key_env, concurrency=self.concurrency,
            identity=self.identity, client_host=socket.gethostname(),
        ))
        return LoadedModel(model=EndpointModel(client, self.concurrency, count_tokens=self.count_tokens), load_s=time.perf_counter() - start,
                           quantize_s=0.0, applied=applied)
