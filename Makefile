# `make test` and `make demo` set everything up (a .venv at the repo root with the
# package installed editable) and then run. Both are idempotent: the install step
# re-runs only when pyproject.toml changes.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export JAX_COMPILATION_CACHE_DIR ?= $(CURDIR)/.cache/jax
# Two test workers on two cores: one BLAS thread each (multithreaded OpenBLAS on a
# busy 2-core machine made dense solves and eigenvalues 30-65x slower).
export OPENBLAS_NUM_THREADS ?= 1
# Keep Python's bytecode (and pytest's rewritten tests) between processes, even where
# the environment asks not to write it: every CLI, docs and packaging test starts a
# fresh interpreter (measured: collecting the tests 19 s without, 11 s with).
unexport PYTHONDONTWRITEBYTECODE

.PHONY: setup docs docs-quick docs-serve test test-slow coverage demo lint bench bench-peers bench-analog bench-analog-scale bench-certificate bench-landscape bench-processes clean

setup: $(STAMP)

# uv installs the same releases as pip (checked: identical `pip freeze`) in a third
# of the time (14 s against 46 s on a fresh clone), which is most of the setup.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip install --quiet --python $(PY) -e ".[dev,docs]"
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadscope --no-loadscope-reorder --durations=10

# The slow tier: the demos' run folders and headline numbers (small runs, one in
# float32 in a subprocess) and the long property test.
test-slow: $(STAMP)
	$(PY) -m pytest -n 2 --dist loadscope -m slow --durations=10

# Line coverage of neurodyn/ per module, both tiers (`-m ''` overrides the default
# deselection of the slow tier), the CLI subprocesses included ([tool.coverage.run]).
coverage: $(STAMP)
	rm -f .coverage .coverage.*
	$(PY) -m coverage run -m pytest -n 2 --dist loadscope -m ''
	$(PY) -m coverage combine --quiet
	$(PY) -m coverage report --show-missing --skip-covered

demo: $(STAMP)
	$(VENV)/bin/neurodyn demo cam-figure1 --out runs/demo

# The documentation site, strict (any warning fails), into site/. The gallery runs
# every demo small whose code changed since its last run (.cache/gallery): the first
# build takes a while, later ones reuse the runs. `docs-quick` skips the demos and
# the examples (the pages show the scripts without figures), as tests/test_docs.py;
# so does `docs-serve` unless NEURODYN_GALLERY is set (a reload would re-run them).
docs: $(STAMP)
	$(VENV)/bin/mkdocs build --strict --site-dir site

docs-quick: $(STAMP)
	NEURODYN_GALLERY=none $(VENV)/bin/mkdocs build --strict --site-dir site

docs-serve: $(STAMP)
	NEURODYN_GALLERY=$${NEURODYN_GALLERY:-none} $(VENV)/bin/mkdocs serve --strict

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(PY) benchmarks/gradients.py

# jaxopt (the `bench` extra) is one of the peers; the report and plot go to runs/.
bench-peers: $(STAMP)
	$(VENV)/bin/uv pip install --quiet --python $(PY) -e ".[dev,bench]"
	mkdir -p runs
	$(PY) benchmarks/peers.py --out runs/peers.md --plot runs/peers.png

bench-analog: $(STAMP)
	$(PY) benchmarks/analog_solvers.py

# Analog learning at scale: neurodyn's methods against a hand-written diffrax script.
bench-analog-scale: $(STAMP)
	$(PY) benchmarks/analog_scale.py

bench-certificate: $(STAMP)
	$(PY) benchmarks/certificate.py

# nd.find_fixed_points: 1000 starts on a 100-unit network.
bench-landscape: $(STAMP)
	$(PY) benchmarks/landscape.py

# Training updates over 1, 2 and 4 local processes (jax.distributed, gloo).
bench-processes: $(STAMP)
	$(PY) benchmarks/processes.py

clean:
	rm -rf $(VENV) .cache runs site
