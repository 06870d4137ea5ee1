"""The SSE parser: any serialisation, cut anywhere, parses back to the same events."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from qeval.targets._sse import SseEvent, SseParser

# Data may hold "\n" (it becomes several data: lines) but not "\r": a lone "\r" in a value
# would be a line end, and the format has no escape for it.
_DATA = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r"), max_size=40)
_NAME = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=10)
_EOL = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def _streams(draw: st.DrawFn) -> tuple[list[SseEvent], bytes]:
    """Events and one serialisation of them: random line ends, comments, other fields."""
    events = draw(st.lists(st.builds(SseEvent, data=_DATA, event=st.none() | _NAME), max_size=8))
    out: list[str] = []

    def line(text: str) -> None:
        eol = draw(_EOL)
        if not text and out and out[-1].endswith("\r") and eol == "\n":
            eol = "\r\n"  # "\r" then "\n" would be one line end, not an empty line
        out.append(text + eol)

    def field(name: str, value: str) -> None:
        # The parser drops one space after the colon; a value starting with one needs it written.
        line(name + ":" + (" " if draw(st.booleans()) or value.startswith(" ") else "") + value)

    for event in events:
        if draw(st.booleans()):
            line(":" + draw(_NAME))  # a comment (keep-alive)
        if event.event is not None:
            field("event", event.event)
        if draw(st.booleans()):
            field("id", "7")  # ignored fields must not disturb the data
        for data_line in event.data.split("\n"):
            field("data", data_line)
        line("")
    return events, "".join(out).encode("utf-8")


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted(set(cuts))
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)])]


def _parse(chunks: list[bytes]) -> list[SseEvent]:
    parser = SseParser()
    events = [e for chunk in chunks for e in parser.feed(chunk)]
    return events + parser.close()


@given(_streams(), st.data())
def test_round_trip_through_any_chunking(stream: tuple[list[SseEvent], bytes], draw: st.DataObject) -> None:
    events, data = stream
    cuts = draw.draw(st.lists(st.integers(min_value=0, max_value=len(data)), max_size=max(1, len(data) // 2)))
    assert _parse(_cut(data, cuts)) == events


@given(_streams())
def test_byte_by_byte(stream: tuple[list[SseEvent], bytes]) -> None:
    events, data = stream
    assert _parse([data[i : i + 1] for i in range(len(data))]) == events


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    # "\r" ends one chunk and "\n" opens the next: one line end, not an extra empty line.
    parser = SseParser()
    assert parser.feed(b"data: a\r") == []
    assert parser.feed(b"\ndata: b\r") == []
    assert parser.feed(b"\n\r\n") == [SseEvent("a\nb")]


def test_lone_cr_ends_lines() -> None:
    assert _parse([b"data: x\r\rdata: y\r\r"]) == [SseEvent("x"), SseEvent("y")]


def test_several_events_in_one_chunk_and_comments_ignored() -> None:
    chunk = b": ping\n\ndata: {\"a\": 1}\n\n:another\ndata: [DONE]\n\n"
    assert SseParser().feed(chunk) == [SseEvent('{"a": 1}'), SseEvent("[DONE]")]


def test_utf8_character_split_across_chunks() -> None:
    data = "data: héllo → 世界 🎉\n\n".encode()
    for i in range(1, len(data)):
        assert _parse([data[:i], data[i:]]) == [SseEvent("héllo → 世界 🎉")], i


def test_event_without_blank_line_kept_at_close_but_partial_line_dropped() -> None:
    assert _parse([b"data: [DONE]\n"]) == [SseEvent("[DONE]")]
    assert _parse([b"data: 1\n\ndata: {\"cut"]) == [SseEvent("1")]


def test_field_without_data_dispatches_nothing_and_bom_is_skipped() -> None:
    assert _parse([b"event: ping\n\n"]) == []
    assert _parse(["\ufeffdata: x\n\n".encode()]) == [SseEvent("x")]
    assert _parse([b"data\n\n"]) == [SseEvent("")]  # a field name alone has an empty value
