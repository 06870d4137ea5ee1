"""Server-sent events: an incremental parser fed raw byte chunks. Pure, no I/O.

Follows the WHATWG "event stream interpretation" rules that matter for
OpenAI-compatible servers: ``data:`` lines of one event are joined with ``\\n``,
lines starting with ``:`` are comments, a line ends at ``\\r\\n``, ``\\n`` or
``\\r``, and an event is dispatched at an empty line. Chunks may cut anywhere,
including inside a line ending or a multi-byte UTF-8 character: lines are split
as bytes (the terminators are ASCII, so they never occur inside a UTF-8
sequence) and only decoded once complete.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE_END = re.compile(rb"[\r\n]")
_CR, _LF = 0x0D, 0x0A
_BOM = "\ufeff"


@dataclass(frozen=True)
class SseEvent:
    """One dispatched event.

    ``data``: the event's ``data:`` values joined with ``\\n``;
    ``event``: the ``event:`` field when the server sent one (OpenAI servers do not).
    """

    data: str
    event: str | None = None


class SseParser:
    """Feed raw bytes with :meth:`feed`; it returns the events completed by them.

    Not thread-safe: one parser per response stream.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._data: list[str] = []
        self._event: str | None = None
        self._skip_lf = False  # the last chunk ended on "\r": a "\n" opening the next one is its pair
        self._at_start = True  # a UTF-8 BOM is allowed once, at the very start of the stream

    def feed(self, chunk: bytes) -> list[SseEvent]:
        """Consume ``chunk``; return the events whose terminating empty line it completed."""
        if not chunk:
            return []
        buffer = self._buffer
        buffer += chunk
        start = 0
        if self._skip_lf:
            self._skip_lf = False
            if buffer[0] == _LF:
                start = 1
        events: list[SseEvent] = []
        end = len(buffer)
        while (match := _LINE_END.search(buffer, start)) is not None:
            pos = match.start()
            line = bytes(buffer[start:pos])
            if buffer[pos] == _CR and pos + 1 < end and buffer[pos + 1] == _LF:
                start = pos + 2
            else:
                start = pos + 1
                # A "\r" at the very end may be half of a "\r\n" cut by the chunking.
                self._skip_lf = buffer[pos] == _CR and start == end
            self._line(line.decode("utf-8", errors="replace"), events)
        del buffer[:start]
        return events

    def close(self) -> list[SseEvent]:
        """End of stream: dispatch an event whose lines all arrived but whose blank line did not.

        The WHATWG rules drop such an event; some servers omit the final blank line
        after ``data: [DONE]``, so complete lines are kept. A partial last line (no
        line ending) is dropped: the stream was cut inside it.
        """
        self._buffer.clear()
        events: list[SseEvent] = []
        self._dispatch(events)
        return events

    def _line(self, line: str, events: list[SseEvent]) -> None:
        if self._at_start:
            self._at_start = False
            if line.startswith(_BOM):
                line = line[1:]
        if not line:
            self._dispatch(events)
            return
        if line.startswith(":"):
            return  # comment: servers send these as keep-alives
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            self._data.append(value)
        elif field == "event":
            self._event = value
        # "id" and "retry" only matter to a reconnecting EventSource; we never reconnect a stream.

    def _dispatch(self, events: list[SseEvent]) -> None:
        if self._data:
            events.append(SseEvent(data="\n".join(self._data), event=self._event))
        self._data = []
        self._event = None
