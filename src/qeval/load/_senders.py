"""A provisioned target as the load generator drives it: one :class:`~qeval.load._driver.Sender`
per kind of target, chosen by :func:`sender_for` from the loaded model's abilities.

* An endpoint (``openai:`` or a managed ``vllm:``/``llamacpp:`` server): each request goes out on
  :class:`~qeval.load._client.LoadClient` (asyncio, streamed), built like the model's own requests.
* An in-process model: requests are admitted into free slots of the in-process engine as they
  arrive (:class:`~qeval.load._inprocess.SlotServer`), so both are measured by the same generator.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

from qeval.generation import GenerationSettings
from qeval.load._types import Reply
from qeval.models._base import Prompt


class EndpointSender:
    """Requests built by the endpoint model (``model.request``), sent by a :class:`LoadClient`."""

    def __init__(self, model: Any, client: Any, settings: GenerationSettings) -> None:
        self._model = model
        self._client = client
        self._settings = settings

    async def send(self, prompt: Prompt, max_tokens: int) -> Reply:
        request = self._model.request(prompt, replace(self._settings, max_new_tokens=max_tokens))
        reply: Reply = await self._client.send(request)
        return reply


class InProcessSender:
    """Requests admitted into free slots of an in-process model's engine."""

    def __init__(self, server: Any) -> None:
        self._server = server

    async def send(self, prompt: Prompt, max_tokens: int) -> Reply:
        from qeval.load._inprocess import serve

        done = await serve(self._server, prompt, max_tokens)
        return Reply(
            token_times_ms=tuple(done.token_times_ms), e2e_ms=done.e2e_ms,
            output_tokens=done.output_tokens if done.error_kind is None else None,
            error_kind=done.error_kind, error=done.error, token_source="ids",
        )


@contextlib.asynccontextmanager
async def sender_for(model: Any, settings: GenerationSettings, *, max_in_flight: int) -> AsyncIterator[Any]:
    """The sender for a provisioned ``model``, open for the ``async with`` block.

    ``max_in_flight``: the most requests the run will have in flight at once (the connection
    pool's size for an endpoint, the number of engine slots in-process)."""
    from qeval.targets._endpoint import EndpointModel

    if isinstance(model, EndpointModel):
        from qeval.load._client import LoadClient

        client = model.client
        async with LoadClient(client.settings, client.served_model(), max_connections=max_in_flight,
                              count_tokens=model.token_counter) as load_client:
            yield EndpointSender(model, load_client, settings)
        return
    from qeval.load._inprocess import SlotServer

    server = SlotServer(model, slots=max_in_flight, stop=tuple(settings.stop))
    try:
        yield InProcessSender(server)
    finally:
        server.close()
