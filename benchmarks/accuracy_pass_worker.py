"""One side of ``benchmarks/accuracy_pass.py``, run as its own process: greedy completions of
the prompts in a JSON file, by a plain static-batched ``model.generate`` loop or by lm-eval's hf
backend (``HFLM.generate_until``). Standalone on purpose (torch + transformers, and lm_eval for
``lmeval``): it runs in lm-eval's own virtualenv, where qeval is not installed.

    python benchmarks/accuracy_pass_worker.py plain  MODEL_DIR PROMPTS.json OUT.json
    python benchmarks/accuracy_pass_worker.py lmeval MODEL_DIR PROMPTS.json OUT.json

PROMPTS.json: ``{"prompts": [...], "max_new_tokens": N, "stop": [...], "batch_size": B}``; the
prompts are the exact texts qeval feeds its model (chat template applied, BOS included), so they
are tokenized without special tokens on every side. OUT.json: ``{"load_s", "generate_s",
"completions"}``, each completion cut at its first stop string as qeval scores it.
"""

from __future__ import annotations

import json
import sys
import time


def cut(text: str, stops: list[str]) -> str:
    ends = [i for i in (text.find(s) for s in stops) if i >= 0]
    return text[: min(ends)] if ends else text


def plain(model_dir: str, job: dict) -> dict:
    """What a user writes by hand: static batches in suite order, left padding, stop strings."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, StoppingCriteriaList
    from transformers.generation.stopping_criteria import StopStringCriteria

    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    criteria = StoppingCriteriaList([StopStringCriteria(tokenizer, job["stop"])]) if job["stop"] else None
    load_s = time.perf_counter() - start
    prompts, size = job["prompts"], job["batch_size"]
    completions: list[str] = []
    start = time.perf_counter()
    for b in range(0, len(prompts), size):
        enc = tokenizer(prompts[b : b + size], return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**enc, max_new_tokens=job["max_new_tokens"], do_sample=False, num_beams=1,
                                 temperature=None, top_p=None, top_k=None, stopping_criteria=criteria,
                                 pad_token_id=tokenizer.pad_token_id)
        texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        completions.extend(cut(t, job["stop"]) for t in texts)
    return {"load_s": load_s, "generate_s": time.perf_counter() - start, "completions": completions}


def lmeval(model_dir: str, job: dict) -> dict:
    """lm-eval's hf backend on the same prompts: what ``lm_eval --model hf`` runs for a
    ``generate_until`` task (it sorts requests longest first and batches them itself)."""
    from lm_eval.api.instance import Instance
    from lm_eval.models.huggingface import HFLM

    start = time.perf_counter()
    lm = HFLM(pretrained=model_dir, batch_size=job["batch_size"], device="cpu", dtype="float32")
    load_s = time.perf_counter() - start
    kwargs = {"until": list(job["stop"]), "max_gen_toks": job["max_new_tokens"], "do_sample": False}
    requests = [Instance(request_type="generate_until", doc={}, arguments=(p, dict(kwargs)), idx=i)
                for i, p in enumerate(job["prompts"])]
    start = time.perf_counter()
    texts = lm.generate_until(requests, disable_tqdm=True)
    return {"load_s": load_s, "generate_s": time.perf_counter() - start,
            "completions": [cut(t, job["stop"]) for t in texts]}


def main() -> None:
    side, model_dir, prompts_path, out_path = sys.argv[1:5]
    with open(prompts_path) as f:
        job = json.load(f)
    result = {"plain": plain, "lmeval": lmeval}[side](model_dir, job)
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
