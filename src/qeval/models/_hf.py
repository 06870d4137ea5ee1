"""Local Hugging Face model directories (transformers), at any registered precision."""

from __future__ import annotations

import gc
import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from qeval.applied import AppliedPrecision
from qeval.generation import GenerationSettings
from qeval.errors import ModelError
from qeval.models._base import Abilities, Generation, LoadedModel, Message, Prompt, TimedGeneration, plain_text
from qeval.results import ModelCard

ACCURACY_DRAFT_TOKENS = 4
"""The accuracy pass checks up to this many prompt-lookup draft tokens per row in a pass, where
the drafts have been paying off (:func:`qeval.models._engine.draft_width`). Greedy verification
keeps every token the plain pass would give; on the bundled model it made the medical suite's
pass 1.22x faster (62% of drafts taken) and left arithmetic's as it was (see docs/metrics.md).
Timed requests and in-process load levels do not speculate: their latency is the plain engine's."""

if TYPE_CHECKING:
    from qeval.models._gptq_checkpoint import GptqCheckpoint
    from qeval.models._weight_first import WeightFirstLinears


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


class _TokenClock:
    """A transformers streamer that timestamps each generated token.

    ``generate`` calls ``put`` once with the prompt ids, then once per new token,
    after the token is chosen. On CUDA we synchronise first so the time is when
    the token really exists, not when the kernel was queued.
    """

    def __init__(self, device: str, start: float) -> None:
        self._device = device
        self._start = start
        self._seen_prompt = False
        self.times_ms: list[float] = []

    def put(self, value: Any) -> None:
        if not self._seen_prompt:
            self._seen_prompt = True
            return
        _sync(self._device)
        self.times_ms.append((time.perf_counter() - self._start) * 1000.0)

    def end(self) -> None:
        pass


class HFTextModel:
    """A transformers causal LM + tokenizer behind the :class:`TextModel` interface."""

    abilities = Abilities(refills_slots=True)
    """``generate_stream`` decodes ``batch_size`` rows at a time and refills finished rows'
    slots: the accuracy pass hands it every prompt at once and journals chunks as they end."""

    def __init__(self, model: Any, tokenizer: Any, device: str) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        eos = model.generation_config.eos_token_id
        if eos is None:
            eos = tokenizer.eos_token_id
        self._eos_ids = set(eos if isinstance(eos, list) else [eos])
        bos_id = tokenizer.bos_token_id
        adds_bos = bos_id is not None and tokenizer("a").input_ids[:1] == [bos_id]
        self._bos_prefix = tokenizer.bos_token if adds_bos else ""
        self._stops: dict[tuple[str, ...], Any] = {}
        self._weight_first: WeightFirstLinears | None = None
        """Set while an accuracy stream runs (:mod:`qeval.models._weight_first`)."""

    def prepare(self, messages: Sequence[Message], *, chat: bool) -> Prompt:
        if not chat:
            # We tokenize with add_special_tokens=False (chat templates carry their own
            # special tokens), so put back the BOS a raw prompt would normally get.
            return Prompt(tuple(messages), chat=False, text=f"{self._bos_prefix}{plain_text(messages)}")
        if not self.tokenizer.chat_template:
            raise ModelError(
                "The suite asks for the chat template (chat_template: true) but this model's "
                "tokenizer has none. Set `chat_template: false` in suite.yaml, or use an "
                "instruction-tuned model that ships a chat template."
            )
        turns = [{"role": m.role, "content": m.content} for m in messages]
        text = self.tokenizer.apply_chat_template(turns, tokenize=False, add_generation_prompt=True)
        return Prompt(tuple(messages), chat=True, text=text)

    def _count_and_decode(self, new_ids: Any) -> tuple[str, int]:
        ids = new_ids.tolist()
        n = len(ids)
        for i, tok in enumerate(ids):
            if tok in self._eos_ids:
                n = i + 1  # the EOS was generated: it counts
                break
            if tok == self.tokenizer.pad_token_id:
                n = i  # padding after a stop string ended this row
                break
        text = self.tokenizer.decode(ids[:n], skip_special_tokens=True)
        return text, n

    def _gen_kwargs(self, settings: GenerationSettings) -> dict[str, Any]:
        stop: dict[str, Any] = {}
        if settings.stop:
            # Stop generating at a stop string (the text is cut there anyway before
            # scoring): saves the tokens a server would not generate either.
            stop = {"stopping_criteria": self._stop_criteria(tuple(settings.stop))}
        return {
            **stop,
            "max_new_tokens": settings.max_new_tokens,
            "do_sample": False,
            "num_beams": 1,
            "pad_token_id": self.tokenizer.pad_token_id,
            # Explicit so a model's generation_config cannot switch on sampling.
            "temperature": None,
            "top_p": None,
            "top_k": None,
        }

    def _stop_criteria(self, stop: tuple[str, ...]) -> Any:
        # Built once per stop tuple: transformers' StopStringCriteria scans the whole
        # vocabulary (~0.5 s for 49k tokens), which `stop_strings=` would redo inside
        # every generate call -- and inside every timed request's TTFT.
        if stop not in self._stops:
            from transformers import StoppingCriteriaList
            from transformers.generation.stopping_criteria import StopStringCriteria

            self._stops[stop] = StoppingCriteriaList([StopStringCriteria(self.tokenizer, list(stop))])
        return self._stops[stop]

    def generate(self, prompts: Sequence[Prompt], settings: GenerationSettings) -> list[Generation]:
        """Greedy completions of ``prompts``, in order: :meth:`generate_stream` collected."""
        results: list[Generation | None] = [None] * len(prompts)
        for i, gen in self.generate_stream(prompts, settings):
            results[i] = gen
        done = [r for r in results if r is not None]
        assert len(done) == len(results), "generate_stream yields every prompt"
        return done

    def generate_stream(
        self, prompts: Sequence[Prompt], settings: GenerationSettings, group: int | None = None
    ) -> Iterator[tuple[int, Generation]]:
        """``(prompt index, completion)`` as each row ends, through the slot-refilling engine
        (:mod:`qeval.models._engine`; ``group``: see its ``waiting_order``).

        ``settings.batch_size`` rows decode at a time and finished rows' slots are refilled, so
        the batch drains only once, at the end. Falls back to ``model.generate`` (static batches,
        in order) for a model the engine cannot drive, e.g. a quantized or sliding-window KV cache.
        """
        from qeval.models._engine import EngineUnsupported

        texts = [p.text for p in prompts]
        if getattr(self, "_engine_unsupported", None) is None:
            stream = self._engine_stream(texts, settings, group)
            try:
                first = next(stream, None)
            except (EngineUnsupported, AttributeError, NotImplementedError) as exc:
                import warnings

                self._engine_unsupported = f"{type(exc).__name__}: {exc}"
                warnings.warn(f"qeval: batched decoding falls back to model.generate ({self._engine_unsupported})",
                              RuntimeWarning, stacklevel=2)
            else:
                if first is not None:
                    yield first
                    yield from stream
                return
        for b in range(0, len(texts), settings.batch_size):
            yield from enumerate(self._generate_static(texts[b : b + settings.batch_size], settings), start=b)

    def _engine_stream(
        self, prompts: Sequence[str], settings: GenerationSettings, group: int | None
    ) -> Iterator[tuple[int, Generation]]:
        import torch

        from qeval.models._engine import check_generation_config, iter_greedy
        from qeval.models._weight_first import weight_first_linears

        check_generation_config(self.model.generation_config)
        prompt_ids = self.tokenizer(list(prompts), add_special_tokens=False).input_ids
        self._restore_linears()
        self._weight_first = weight_first_linears(self.model)
        try:
            for i, ids in iter_greedy(
                self.model, prompt_ids, slots=settings.batch_size, max_new_tokens=settings.max_new_tokens,
                group=group, speculate=ACCURACY_DRAFT_TOKENS, **self._engine_options(tuple(settings.stop)),
            ):
                text, n = self._count_and_decode(torch.tensor(ids, dtype=torch.long))
                yield i, Generation(text=text, output_tokens=n)
        finally:
            self._restore_linears()

    def _restore_linears(self) -> None:
        """Every linear layer's own forward back (see :mod:`qeval.models._weight_first`): the accuracy
        stream does it when it ends; timed requests call it first, in case a stream was left
        unfinished, so their latency is always the plain forward's."""
        if self._weight_first is not None:
            self._weight_first.restore()
            self._weight_first = None

    def _engine_options(self, stop: tuple[str, ...]) -> dict[str, Any]:
        """How the engine ends this model's rows (``end_ids``, ``pad_id``, ``should_stop``), the
        way ``model.generate`` ends them: also used by :mod:`qeval.load._inprocess`."""
        import torch

        should_stop = None
        if stop:
            # the very criterion model.generate applies (it also matches a stop string that
            # begins in the prompt), so a row stops on the token a batch-1 generate stops on
            criteria = self._stop_criteria(stop)

            def should_stop(prompt: Sequence[int], ids: list[int]) -> bool:
                return bool(criteria(torch.tensor([[*prompt, *ids]]), None)[0])

        # pad ends a row too: _count_and_decode cuts a completion there, as for model.generate
        end_ids = set(self._eos_ids) | {self.tokenizer.pad_token_id}
        return {"end_ids": end_ids, "pad_id": self.tokenizer.pad_token_id, "should_stop": should_stop}

    def _generate_static(self, prompts: Sequence[str], settings: GenerationSettings) -> list[Generation]:
        """One static batch through ``model.generate`` (left padding): the engine's fallback."""
        import torch

        # Plain no_grad, not inference_mode: quanto's packed tensors fail under the latter.
        enc = self.tokenizer(list(prompts), return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(self.device) for k, v in enc.items()}
        with torch.no_grad():
            out = self.model.generate(**enc, **self._gen_kwargs(settings))
        prompt_len = enc["input_ids"].shape[1]
        results = []
        for row in out[:, prompt_len:].cpu():
            text, n = self._count_and_decode(row)
            results.append(Generation(text=text, output_tokens=n))
        return results

    def generate_timed(self, prompt: Prompt, settings: GenerationSettings) -> TimedGeneration:
        import torch

        self._restore_linears()
        _sync(self.device)
        t0 = time.perf_counter()
        enc = self.tokenizer([prompt.text], return_tensors="pt", add_special_tokens=False)
        enc = {k: v.to(self.device) for k, v in enc.items()}
        _sync(self.device)
        start = time.perf_counter()
        tokenize_ms = (start - t0) * 1000.0
        clock = _TokenClock(self.device, start)
        with torch.no_grad():
            out = self.model.generate(**enc, streamer=clock, **self._gen_kwargs(settings))
        text, n = self._count_and_decode(out[0, enc["input_ids"].shape[1] :].cpu())
        return TimedGeneration(
            text=text,
            output_tokens=n,
            tokenize_ms=tokenize_ms,
            token_times_ms=tuple(clock.times_ms[:n]),
        )

    def weights_bytes(self) -> int | None:
        from qeval.memory import weights_bytes

        return weights_bytes(self.model)

    def close(self) -> None:
        self.model = None
        gc.collect()
        if self.device.startswith("cuda"):
            import torch

            torch.cuda.empty_cache()

    def generate_timed_batch(self, prompts: Sequence[Prompt], settings: GenerationSettings) -> list[TimedGeneration]:
        """Greedy completions of one left-padded batch with per-row token timestamps.

        Every row starts with the batch (after tokenization, which is reported apart)
        and shares its step times: the streamer sees the whole ``(B,)`` column of new
        ids once per step. A row's times stop at its own EOS (or the padding after a
        stop string), counted like :meth:`generate` counts tokens.
        """
        import torch

        self._restore_linears()
        _sync(self.device)
        t0 = time.perf_counter()
        enc = self.tokenizer([p.text for p in prompts], return_tensors="pt", padding=True, add_special_tokens=False)
        enc = {k: v.to(self.device) for k, v in enc.items()}
        _sync(self.device)
        start = time.perf_counter()
        clock = _TokenClock(self.device, start)
        with torch.no_grad():
            out = self.model.generate(**enc, streamer=clock, **self._gen_kwargs(settings))
        tokenize_ms = (start - t0) * 1000.0
        results = []
        for row in out[:, enc["input_ids"].shape[1] :].cpu():
            text, n = self._count_and_decode(row)
            results.append(TimedGeneration(
                text=text, output_tokens=n, tokenize_ms=tokenize_ms, token_times_ms=tuple(clock.times_ms[:n])
            ))
        return results

    def count_tokens(self, text: str) -> int:
        """Tokens ``text`` becomes as a prompt (special tokens written in it included)."""
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)


def _import_cache_utils_without_hqq() -> None:
    """Import ``transformers.cache_utils`` without the ``hqq`` import it does when hqq is
    installed (for its quantized KV cache, which qeval never uses: its hqq precision calls hqq
    directly). That import pulls in torch's compiler stack, ~1.2 s of every model load on a
    2-core machine. transformers asks ``is_hqq_available()`` once, at import: it answers False
    for that moment only. A transformers without these names is imported as it is."""
    import sys

    if "transformers.cache_utils" in sys.modules:
        return
    import transformers.utils as utils
    import transformers.utils.import_utils as import_utils

    saved = utils.__dict__.get("is_hqq_available"), import_utils.__dict__.get("is_hqq_available")
    if None in saved:
        return
    utils.is_hqq_available = import_utils.is_hqq_available = lambda *args, **kwargs: False
    try:
        import transformers.cache_utils  # noqa: F401
    finally:
        utils.is_hqq_available, import_utils.is_hqq_available = saved


def _quiet_transformers() -> None:
    import logging

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("transformers").setLevel(logging.ERROR)


def read_config(path: Path) -> dict[str, Any]:
    cfg = path / "config.json"
    fix = "Point --model at the folder save_pretrained wrote, or restore its config.json."
    try:
        config = json.loads(cfg.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ModelError(f"{cfg}:{exc.lineno}: the model config is not valid JSON ({exc.msg}). {fix}") from None
    except (OSError, ValueError, RecursionError) as exc:  # unreadable, not UTF-8, nested too deep
        raise ModelError(f"{cfg}: cannot read the model config ({exc}). {fix}") from None
    if not isinstance(config, dict):
        raise ModelError(f"{cfg}: the model config should be a JSON object, found {type(config).__name__}. {fix}")
    return config


@dataclass
class HFSource:
    """A local directory holding a transformers model (config.json + weights + tokenizer)."""

    path: Path
    card: ModelCard
    stored_dtype: str = "float32"
    """The dtype config.json names (``dtype`` / ``torch_dtype``): what ``as-is`` loads."""
    gptq: GptqCheckpoint | None = None
    """Set when the folder is already a GPTQ checkpoint: only ``as-is`` runs on it."""

    @classmethod
    def from_dir(
        cls, spec: str, path: Path, source_precision: str | None = None, notes: str = "", name: str | None = None
    ) -> HFSource:
        from qeval.models._gptq_checkpoint import detect_gptq_checkpoint

        config = read_config(path)
        archs = config.get("architectures")
        if not (isinstance(archs, list) and archs and isinstance(archs[0], str)):  # a damaged config: load() says more
            archs = [str(config.get("model_type", "unknown"))]
        dtype = config.get("dtype") or config.get("torch_dtype") or "unknown"
        quant = config.get("quantization_config")
        gptq = detect_gptq_checkpoint(path, config)
        if source_precision is None:
            if gptq is not None:
                source_precision = gptq.describe()
            elif isinstance(quant, dict):
                source_precision = f"{quant.get('quant_method', 'quantized')} ({json.dumps(quant, sort_keys=True)[:120]})"
            else:
                source_precision = str(dtype)
        card = ModelCard(
            spec=spec,
            name=name or str(config.get("_name_or_path") or path.name),
            source_precision=source_precision,
            parameters=None,
            architecture=archs[0],
            path=str(path),
            notes=notes,
        )
        return cls(path=path, card=card, stored_dtype=_stored_dtype(dtype), gptq=gptq)

    def load(self, precision: str, device: str, calibration: Any = None) -> LoadedModel:
        import torch

        from qeval.quantize import QuantizeContext, get_precision

        _import_cache_utils_without_hqq()
        _quiet_transformers()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        prec = get_precision(precision)
        _sync(device)
        t0 = time.perf_counter()
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.path)
        except Exception as exc:  # noqa: BLE001 -- transformers' many failure types become one user-facing error
            raise ModelError(
                f"{self.path}: cannot load a tokenizer ({_first_line(exc)}). The folder needs the tokenizer files "
                "(tokenizer.json, tokenizer_config.json): save them there with tokenizer.save_pretrained(folder)."
            ) from None
        if self.gptq is not None:
            return self._load_gptq(prec, device, tokenizer, t0)
        # as-is has no load dtype of its own: the checkpoint's stored dtype
        try:
            model = AutoModelForCausalLM.from_pretrained(self.path, dtype=prec.load_dtype or getattr(torch, self.stored_dtype))
        except Exception as exc:  # noqa: BLE001 -- missing, truncated or mismatched weights, a config transformers refuses
            raise ModelError(
                f"{self.path}: cannot load the model ({_first_line(exc)}). The folder needs the config.json and weights "
                "(model.safetensors or pytorch_model.bin) that save_pretrained writes: re-save or re-download the model."
            ) from None
        # transformers' stubs type PreTrainedModel.to through a decorator that drops the device argument
        model.to(device)  # type: ignore[arg-type]
        model.eval()
        _sync(device)
        load_s = time.perf_counter() - t0
        if self.card.parameters is None:
            self.card = _with_parameters(self.card, sum(p.numel() for p in model.parameters()))
        from qeval.artifact_lock import artifact_lock

        context = None
        if prec.needs_calibration:
            context = QuantizeContext(tokenizer, calibration, self.artifact_dir(prec, calibration))
        # a calibrated checkpoint is quantized by one process at a time (the next one reuses it); the
        # clock starts once the lock is held, so waiting for another's build is not quantize time
        with artifact_lock(context.artifact_dir if context is not None else None):
            t1 = time.perf_counter()
            quantized, applied = prec.apply(model, device, context)
            _sync(device)
            quantize_s = time.perf_counter() - t1
        return LoadedModel(
            model=HFTextModel(quantized, tokenizer, device),
            load_s=load_s,
            quantize_s=quantize_s,
            applied=AppliedPrecision.build(**applied),
        )

    def _load_gptq(self, prec: Any, device: str, tokenizer: Any, t0: float) -> LoadedModel:
        """A GPTQ checkpoint runs only as-is, through gptqmodel; any other precision is a skip."""
        from qeval.models._gptq_checkpoint import AS_IS, load_gptq_checkpoint
        from qeval.errors import BackendUnavailable

        assert self.gptq is not None
        if prec.name != AS_IS:
            raise BackendUnavailable(self.gptq.skip_reason(prec.name))
        model, details = load_gptq_checkpoint(self.gptq, device)
        _sync(device)
        load_s = time.perf_counter() - t0
        if self.card.parameters is None:
            # packed weights are buffers, not parameters: count each quantized layer's logical size
            packed = sum(m.in_features * m.out_features for m in model.modules() if hasattr(m, "qweight"))
            self.card = _with_parameters(self.card, sum(p.numel() for p in model.parameters()) + packed)
        model, applied = prec.apply(model, device)
        return LoadedModel(
            model=HFTextModel(model, tokenizer, device), load_s=load_s, quantize_s=0.0,
            applied=AppliedPrecision.build(**{**applied, **details}),
        )

    def artifact_dir(self, precision: Any, calibration: Any) -> Path | None:
        """Where a calibrated precision's checkpoint is cached: keyed by the model files,
        the precision's config, the calibration sample and the library versions."""
        if calibration is None:
            return None
        from qeval.keys import cell_key, model_identity
        from qeval.environment import package_versions
        from qeval.models._builtin import cache_dir
        from qeval.results import to_dict

        key = cell_key({
            "artifact": "quantized-checkpoint",
            "model": model_identity(self.card.spec, self),
            "precision": precision.name,
            "config": to_dict(precision.config),
            "calibration": {k: v for k, v in calibration.record().items() if k != "path"},
            "packages": package_versions(),
        })
        return cache_dir() / "quantized" / f"{precision.name}-{key[:16]}"


def _first_line(exc: BaseException) -> str:
    """``Type: message`` of a third-party error, cut to its first line (transformers' run to a page)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = text if len(text) <= 300 else text[:297] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _stored_dtype(name: Any) -> str:
    """A config's dtype name as torch spells it; fp32 when absent or not a plain floating dtype."""
    name = str(name).removeprefix("torch.")
    return name if name in ("float32", "float16", "bfloat16", "float64") else "float32"


def _with_parameters(card: ModelCard, parameters: int) -> ModelCard:
    from dataclasses import replace

    return replace(card, parameters=parameters)
