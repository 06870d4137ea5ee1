"""The slot-refilling greedy engine: identical completions to batch-1 ``model.generate``."""

from __future__ import annotations

from qeval.models._base import Abilities, Message, Prompt

import random
import warnings

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qeval.generation import GenerationSettings
from qeval.evaluate import CHUNK_BATCHES, accuracy_pass, chunk_size
from qeval.models import FakeTextModel
from qeval.models._engine import (
    EngineUnsupported,
    GreedyEngine,
    check_generation_config,
    greedy_generate,
    iter_greedy,
    shared_prefix_len,
    waiting_order,
)
from tests.fakes import MINI

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def tiny(tiny_llama_builder):
    return tiny_llama_builder()


def _prompts(n: int, seed: int, shared: int = 0) -> list[list[int]]:
    rng = random.Random(seed)
    head = [1] + [rng.randrange(3, 1000) for _ in range(shared)]
    return [head + [rng.randrange(3, 1000) for _ in range(rng.randint(1, 24))] for _ in range(n)]


def _batch1(model, prompt: list[int], max_new_tokens: int) -> list[int]:
    ids = torch.tensor([prompt])
    with torch.no_grad():
        out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new_tokens,
                             do_sample=False, eos_token_id=None, pad_token_id=0)
    return out[0, len(prompt) :].tolist()


def _ends_at(ids: list[int], end_ids: set[int], should_stop) -> list[int]:
    """``ids`` cut after the first end token or the first prefix that ``should_stop``."""
    for i in range(len(ids)):
        if ids[i] in end_ids or (should_stop is not None and should_stop([], ids[: i + 1])):
            return ids[: i + 1]
    return ids


def _stop_by_content(prompt, ids: list[int]) -> bool:
    # a deterministic function of the ids, so each row stops at its own length
    return len(ids) >= 2 + ids[0] % 7


def test_shared_prefix_len_leaves_one_token_per_prompt():
    assert shared_prefix_len([[1, 2, 3, 4], [1, 2, 3, 5]]) == 3
    assert shared_prefix_len([[1, 2, 3], [1, 2, 3, 4]]) == 2
    assert shared_prefix_len([[1, 2], [3, 4]]) == 0
    assert shared_prefix_len([[7]]) == 0
    assert shared_prefix_len([]) == 0


@pytest.mark.parametrize("slots", [1, 3, 8])
@pytest.mark.parametrize("shared", [0, 20])
def test_engine_matches_batch_one_generate(tiny, slots, shared):
    torch.set_num_threads(1)
    prompts = _prompts(14, seed=slots + shared, shared=shared)
    max_new_tokens = 9
    refs = [_batch1(tiny, p, max_new_tokens) for p in prompts]
    # end tokens the model really emits: some rows end on their first token, others run on
    end_ids = {refs[0][0], refs[3][2]}
    got = greedy_generate(tiny, prompts, slots=slots, max_new_tokens=max_new_tokens, end_ids=end_ids, pad_id=0,
                          should_stop=_stop_by_content, min_shared_prefix=16)
    want = [_ends_at(r, end_ids, _stop_by_content) for r in refs]
    mismatches = [i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w]
    assert not mismatches, f"rows {mismatches} differ from batch-1 generate"
    assert len({len(g) for g in got}) > 2  # rows did stop at different lengths


def _repetitive_prompts(n: int, seed: int) -> list[list[int]]:
    """Prompts that repeat their own phrases, so prompt lookup finds drafts (and the tiny model,
    which falls into loops, accepts some of them)."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        phrase = [rng.randrange(3, 60) for _ in range(rng.randint(2, 5))]
        out.append([1] + phrase * rng.randint(2, 4) + [rng.randrange(3, 60) for _ in range(rng.randint(0, 3))])
    return out


@pytest.mark.parametrize("slots", [1, 4])
@pytest.mark.parametrize("speculate", [1, 4])
def test_prompt_lookup_drafts_change_no_token(tiny, slots, speculate):
    torch.set_num_threads(1)
    prompts = _repetitive_prompts(12, seed=slots * 10 + speculate)
    max_new_tokens = 14
    refs = [_batch1(tiny, p, max_new_tokens) for p in prompts]
    end_ids = {refs[1][5]}
    engine = GreedyEngine(tiny, slots=slots, end_ids=end_ids, pad_id=0, should_stop=_stop_by_content,
                          speculate=speculate)
    for i, p in enumerate(prompts):
        engine.admit(i, p, max_new_tokens)
    got: dict[int, list[int]] = {}
    streamed: dict[int, list[int]] = {}
    passes = 0
    while engine.busy:
        step = engine.step()
        passes += 1
        for key, tok in step.tokens:
            streamed.setdefault(key, []).append(tok)
        got.update(step.finished)
    want = {i: _ends_at(r, end_ids, _stop_by_content) for i, r in enumerate(refs)}
    assert got == want
    assert streamed == got  # every kept token is streamed once, in order, none past a row's end
    assert engine.drafted > 0 and engine.accepted > 0  # drafts were checked, and some were taken
    assert passes < len(prompts) + sum(map(len, want.values()))  # fewer passes than one per token


@given(st.lists(st.integers(0, 6), max_size=10), st.floats(0, 1), st.floats(0, 1))
def test_draft_width_is_bounded_and_grows_with_acceptance(lengths, low, high):
    from qeval.models._engine import DRAFT_TOKEN_COST, draft_width

    low, high = sorted((low, high))
    width = draft_width(lengths, low)
    assert 0 <= width <= max(lengths, default=0)
    assert draft_width(lengths, high) >= width
    assert draft_width(lengths, 0.0) == 0  # nothing is ever taken: plain passes
    if lengths and all(lengths):
        assert draft_width(lengths, 1.0) > 0  # every row drafts and everything is taken: worth checking
    rows_without = [n if i == 0 else 0 for i, n in enumerate(lengths)] + [0] * 9
    if rows_without[0] and DRAFT_TOKEN_COST * len(rows_without) > 1:
        assert draft_width(rows_without, 1.0) == 0  # one drafting row cannot pay for ten rows' wider pass


def test_prompt_lookup_takes_the_latest_longest_match():
    from qeval.models._engine import _Row, prompt_lookup

    row = _Row(prompt=[5, 6, 7, 8, 9, 5, 6, 7, 1, 2], max_new_tokens=10, ids=[5, 6, 7])
    assert prompt_lookup(row, 3) == [1, 2, 5]  # "5 6 7" last seen before "1 2"
    assert prompt_lookup(row, 0) == []
    row.ids += [4]  # "6 7 4" / "7 4": never seen
    assert prompt_lookup(row, 3) == []
    row.ids += [8]  # "4 8" unseen, then 2-gram... "4 8" no; none
    assert prompt_lookup(row, 2) == []
    row.ids += [9]  # "8 9" seen once, followed by "5 6"
    assert prompt_lookup(row, 2) == [5, 6]


@given(st.lists(st.integers(1, 50), max_size=40), st.one_of(st.none(), st.integers(1, 12)))
def test_waiting_order_is_longest_first_block_by_block(lengths, group):
    order = waiting_order(lengths, group)
    assert sorted(order) == list(range(len(lengths)))
    size = group or max(len(lengths), 1)
    blocks = [order[b : b + size] for b in range(0, len(order), size)]
    for k, block in enumerate(blocks):
        assert set(block) == set(range(k * size, min((k + 1) * size, len(lengths))))
        assert [lengths[i] for i in block] == sorted((lengths[i] for i in block), reverse=True)


def test_streamed_rows_come_back_as_they_end_and_match_the_collected_ones(tiny):
    prompts = _prompts(11, seed=5, shared=20)
    kwargs = dict(slots=3, max_new_tokens=7, end_ids=set(), pad_id=0, should_stop=_stop_by_content,
                  min_shared_prefix=16)
    streamed = list(iter_greedy(tiny, prompts, group=4, **kwargs))
    assert sorted(i for i, _ in streamed) == list(range(11))
    assert dict(streamed) == dict(enumerate(greedy_generate(tiny, prompts, **kwargs)))
    # block by block: the first block's rows have all ended before the last block's end
    position = {i: n for n, (i, _) in enumerate(streamed)}
    assert max(position[i] for i in range(4)) < max(position[i] for i in range(8, 11))


def test_engine_without_stops_runs_to_max_new_tokens(tiny):
    prompts = _prompts(5, seed=7)
    got = greedy_generate(tiny, prompts, slots=2, max_new_tokens=6, end_ids=set(), pad_id=0)
    assert got == [_batch1(tiny, p, 6) for p in prompts]
    assert greedy_generate(tiny, prompts, slots=2, max_new_tokens=0, end_ids=set(), pad_id=0) == [[]] * 5


def test_generation_config_with_a_logits_processor_is_unsupported():
    from transformers import GenerationConfig

    check_generation_config(GenerationConfig())
    with pytest.raises(EngineUnsupported, match="repetition_penalty"):
        check_generation_config(GenerationConfig(repetition_penalty=1.3))


class _CharTokenizer:
    """One character per token (ids 3..999 -> CJK code points); 0 pad, 1 BOS, 2 EOS."""

    bos_token_id, eos_token_id, pad_token_id = 1, 2, 0
    bos_token, eos_token, pad_token = "<s>", "</s>", "<pad>"
    padding_side = "right"
    chat_template = None
    _base = 0x4E00

    def __call__(self, texts, return_tensors=None, padding=False, add_special_tokens=True):
        from transformers import BatchEncoding

        single = isinstance(texts, str)
        head = [1] if add_special_tokens else []
        rows = [head + self._encode(t) for t in ([texts] if single else texts)]
        if return_tensors is None:
            return BatchEncoding({"input_ids": rows[0] if single else rows})
        width = max(len(r) for r in rows)
        ids = torch.tensor([[0] * (width - len(r)) + r for r in rows])
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
        return {"input_ids": ids, "attention_mask": mask}

    def _encode(self, text: str) -> list[int]:
        return [ord(c) - self._base for c in text.removeprefix(self.bos_token)]

    def _convert_id_to_token(self, i: int) -> str:
        return chr(self._base + i)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        return "".join(tokens)

    def get_vocab(self) -> dict[str, int]:  # what transformers' StopStringCriteria reads
        return {self.pad_token: 0, self.bos_token: 1, self.eos_token: 2,
                **{chr(self._base + i): i for i in range(3, 1000)}}

    def decode(self, ids, skip_special_tokens=False):
        ids = ids.tolist() if hasattr(ids, "tolist") else ids
        return "".join(chr(self._base + i) for i in ids if i > 2 or not skip_special_tokens)


def _text(ids: list[int]) -> str:
    return "".join(chr(0x4E00 + i) for i in ids)


def _raw(text: str) -> Prompt:
    return Prompt((Message("user", text),), chat=False, text=text)


def test_hf_text_model_generate_matches_batch_one(tiny):
    from qeval.evaluate import cut_at_stop
    from qeval.models import HFTextModel

    hf = HFTextModel(tiny, _CharTokenizer(), "cpu")
    prompts = [_text(p[1:]) for p in _prompts(11, seed=3, shared=18)]
    probe = hf._generate_static(prompts[:4], GenerationSettings(max_new_tokens=8, batch_size=4))
    stop = (probe[1].text[2:4], probe[2].text[:1])  # stop strings the model does produce
    settings = GenerationSettings(max_new_tokens=8, stop=stop, batch_size=3)
    got = hf.generate([_raw(p) for p in prompts], settings)
    assert getattr(hf, "_engine_unsupported", None) is None
    assert not [m for m in tiny.modules() if "forward" in vars(m)]  # the weight-first product was undone
    for p, g in zip(prompts, got, strict=True):
        ref = hf._generate_static([p], settings)[0]
        assert cut_at_stop(g.text, stop) == cut_at_stop(ref.text, stop)
        assert g.output_tokens == ref.output_tokens
    assert any(g.output_tokens < 8 for g in got)


def test_hf_text_model_falls_back_to_model_generate(tiny, monkeypatch):
    from qeval.models import HFTextModel

    hf = HFTextModel(tiny, _CharTokenizer(), "cpu")
    prompts = [_raw(_text(p[1:])) for p in _prompts(5, seed=4)]
    settings = GenerationSettings(max_new_tokens=5, batch_size=2)
    want = hf.generate(prompts, settings)

    def unsupported(*args, **kwargs):
        raise EngineUnsupported("cache layer QuantizedLayer is not a plain DynamicLayer")

    monkeypatch.setattr("qeval.models._engine.iter_greedy", unsupported)
    with pytest.warns(RuntimeWarning, match="falls back to model.generate"):
        assert hf.generate(prompts, settings) == want
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # said once, not on every call
        assert hf.generate(prompts, settings) == want


class _RefillingFake(FakeTextModel):
    """Streams completions in a scrambled order, as a slot-refilling batch does."""

    abilities = Abilities(refills_slots=True)

    def __init__(self):
        super().__init__(lambda prompt, precision: f"The answer is {len(prompt)}.", "fp32", 0.0, 0)
        self.calls: list[tuple[int, int | None]] = []

    def generate_stream(self, prompts, settings, group=None):
        self.calls.append((len(prompts), group))
        gens = super().generate(prompts, settings)
        order = sorted(range(len(prompts)), key=lambda i: (i % 3, -i))  # every chunk ends late
        for i in order:
            yield i, gens[i]


def test_accuracy_pass_streams_every_chunk_through_a_refilling_model():
    from qeval.suites import load_suite

    suite = load_suite(str(MINI))
    settings = GenerationSettings(max_new_tokens=8, batch_size=2)
    plain = accuracy_pass(FakeTextModel(lambda prompt, precision: f"The answer is {len(prompt)}.", "fp32", 0.0, 0),
                          suite, settings)
    model = _RefillingFake()
    size = 2 * CHUNK_BATCHES
    assert chunk_size(model, settings) == size
    journaled = {}
    first = accuracy_pass(model, suite, settings, on_batch=lambda i, cases, tok, s: journaled.update({i: (cases, tok, s)}))
    n = len(suite.cases)
    assert model.calls == [(n, size)]  # one stream: the batch never drains between chunks
    assert first.cases == plain.cases  # in suite order, whatever order rows ended in
    assert sorted(journaled) == list(range(-(-n // size)))
    assert [c.case_id for i in sorted(journaled) for c in journaled[i][0]] == [c.id for c in suite.cases]
    assert sum(t for _, t, _ in journaled.values()) == first.output_tokens

    # resuming reuses journaled chunks and streams only the rest
    resumed_model = _RefillingFake()
    again = accuracy_pass(resumed_model, suite, settings, done={0: journaled[0]})
    assert resumed_model.calls == [(n - size, size)]
    assert again.cases == first.cases
    assert chunk_size(FakeTextModel(lambda p, q: "", "fp32", 0.0, 0), settings) == 2


def test_a_stop_between_streamed_chunks_keeps_the_finished_ones():
    from qeval.suites import load_suite

    suite = load_suite(str(MINI))
    settings = GenerationSettings(max_new_tokens=8, batch_size=2)
    journaled = {}

    def stop():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        accuracy_pass(_RefillingFake(), suite, settings, should_stop=stop,
                      on_batch=lambda i, cases, tok, s: journaled.update({i: cases}))
    assert len(journaled) == 1
    (index, cases), = journaled.items()
    assert [c.case_id for c in cases] == [c.id for c in suite.cases[index * 2 * CHUNK_BATCHES:][: len(cases)]]


def _admissions(engine, max_new_tokens: list[int], prompts) -> list[tuple[int, tuple[int, ...], int]]:
    """(step number, keys admitted, rows running before the step) of every prefill, stepping until idle."""
    for key, (p, n) in enumerate(zip(prompts, max_new_tokens, strict=True)):
        engine.admit(key, p, n)
    out, step = [], 0
    while engine.busy:
        running = engine.running
        done = engine.step()
        if done.admitted:
            out.append((step, done.admitted, running))
        step += 1
    return out


def test_rows_that_end_together_are_refilled_together(tiny):
    # even outputs: a static batch's one prefill per batch, not one per few freed slots
    engine = GreedyEngine(tiny, slots=4, end_ids=set(), pad_id=0)
    admitted = _admissions(engine, [3] * 12, _prompts(12, seed=11))
    assert [len(keys) for _, keys, _ in admitted] == [4, 4, 4]


def test_freed_slots_are_refilled_without_waiting_for_the_slowest_row(tiny):
    # one long row among short ones: its three freed slots are refilled once they have idled
    # about a decode step's worth (3 + 3 slot-steps > 4 slots), long before it ends
    engine = GreedyEngine(tiny, slots=4, end_ids=set(), pad_id=0)
    admitted = _admissions(engine, [20, 2, 2, 2, 2, 2, 2, 2, 2], _prompts(9, seed=12))
    first, second = admitted[0], admitted[1]
    assert first[1] == (0, 1, 2, 3)
    assert second[1] == (4, 5, 6) and second[2] == 1  # the long row is still running
    # steps: 0 prefill, 1 decode (three rows end), 2 decode with 3 idle slots, 3 refill
    assert second[0] == 3
    # when every waiting prompt fits, waiting longer cannot save a prefill: refilled at once
    assert admitted[2][1] == (7, 8) and admitted[2][0] == 5


def test_a_server_engine_refills_a_slot_as_soon_as_it_frees(tiny):
    engine = GreedyEngine(tiny, slots=4, end_ids=set(), pad_id=0, refill_min=1)
    admitted = _admissions(engine, [20, 2, 20, 20, 2], _prompts(5, seed=13))
    assert admitted[1][1] == (4,) and admitted[1][0] == 2  # the step right after row 1 ended
