# `make run` sets everything up and runs the study on the embedded synthetic dataset;
# `make test` sets everything up and runs the tests. Both start from a fresh clone.
VENV := .venv
BIN := $(VENV)/bin
SNAKEMAKE := $(BIN)/snakemake

.PHONY: setup run demo report demo-report test lint clean bench

setup: $(VENV)/installed.stamp

$(VENV)/installed.stamp: requirements.txt requirements-dev.txt pyproject.toml
	python3 -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

# The full study with the seeds' settings (a GPU is strongly advised).
run: setup
	$(SNAKEMAKE) --profile profiles/local

# The whole DAG on a CPU in minutes: small data, few epochs, small filters.
demo: setup
	$(SNAKEMAKE) --profile profiles/cpu-demo

# The report's HTML page of a finished run: `make report` after `make run`, `make demo-report`
# after `make demo` (each run's config decides which figures the page holds).
report: setup
	$(SNAKEMAKE) --profile profiles/local --report results/report.html

demo-report: setup
	$(SNAKEMAKE) --profile profiles/cpu-demo --report results/report.html

# Speed and memory on course-size synthetic data: results/benchmark.md and .csv (issue 7),
# with each rule's runtime and peak RSS from a course-size run of the workflow in
# results/bench_run. Extra options through BENCH_ARGS, e.g. make bench BENCH_ARGS="--quick"
# or BENCH_ARGS="--parts rules" (see --help).
bench: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m marsseg.benchmark $(BENCH_ARGS)

test: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest

clean:
	find results -mindepth 1 -maxdepth 1 ! -name README.md ! -name reference -exec rm -rf {} +
	rm -rf logs benchmarks .snakemake
