# Two commands set everything up on a fresh machine: `make study` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# Without these a missing model takes 20-50 s to fail instead of failing at once.
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: env fetch study report test test-fast test-deps lab clean-runs bench bench-quick

# The environment is made once; it is remade when pyproject.toml changes. torch is pinned and installed first,
# so that pip takes the CPU wheel rather than the registry's newest build with gigabytes of CUDA packages.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

env: $(VENV)/.installed

fetch: env
	$(VENV)/bin/llmclf fetch smollm2-135m minilm-l6 bbc-news

# The default study, its held-out confirmation (the kept models on the test rows max_test left out), then its
# report even when a run failed (the failure shows in the report); the exit status is the study's.
study: fetch
	$(VENV)/bin/llmclf run params/default.yaml; status=$$?; \
	$(VENV)/bin/llmclf confirm default; \
	$(VENV)/bin/llmclf report default && exit $$status

# The report's browser test opens pages in Debian's Chromium (driven by Playwright from PyPI, which downloads no
# browser); without one it skips and says why.
test-deps: env
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || \
	  echo "no Chromium could be installed: the browser test will skip"

test: env test-deps
	$(PY) -m pytest tests notebooks --nbval-lax -q

# The unit tests alone (markers in tests/conftest.py: unit / smoke / notebooks): a quick check while editing.
test-fast: env
	$(PY) -m pytest tests -m unit -q

# Throughput against the authors' recipe (bench/bench.py; not part of the tests): a table, and JSON in bench/results/.
# A few minutes on a 2-core CPU; bench-quick about one. Timings on a busy machine are noisy: read the ratios.
bench: fetch
	$(PY) bench/bench.py
	$(PY) bench/linear_scale.py  # multi-label TF-IDF on uspto-10k subclasses (issue 25; --reference adds the old solver)

bench-quick: fetch
	$(PY) bench/bench.py --quick

lab: env
	$(VENV)/bin/jupyter lab notebooks

clean-runs:
	rm -rf runs/default
