# pretrain_lm: `make demo` and `make test` set everything up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MODEL_DIR ?= runs/demo_bert_tiny
FINETUNE_DIR ?= runs/demo_finetune_minilm
export TF_CPP_MIN_LOG_LEVEL ?= 2
export JAX_PLATFORMS ?= cpu

.PHONY: install demo finetune-demo reproduce-demo test test-slow bench lint clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench,benchmarks]'
	touch $(STAMP)

demo: install
	$(PY) -m pretrain_lm.train \
	  --gin_file=gin_configs/bert/demo_tiny_austen.gin \
	  --gin.MODEL_DIR=$(MODEL_DIR) \
	  --results_json=$(MODEL_DIR)/results.json
	$(PY) -m pretrain_lm.tools.plots --model_dir=$(MODEL_DIR)

finetune-demo: install
	$(PY) -m pretrain_lm.train \
	  --gin_file=gin_configs/bert/demo_finetune_minilm_austen_novels.gin \
	  --gin.MODEL_DIR=$(FINETUNE_DIR)
	$(PY) -m pretrain_lm.evaluate \
	  --gin_file=gin_configs/bert/demo_finetune_minilm_austen_novels.gin \
	  --gin.MODEL_DIR=$(FINETUNE_DIR) --split=test

reproduce-demo: install   # every paper table at demo scale -> results/reproduce/demo (hours)
	$(PY) -m pretrain_lm.tools.reproduce --all --scale=demo

# Two worker processes (one per core), each taking whole test files: a file's module
# fixtures (a trained tiny model) are built once. `make test-slow`: the long end-to-end runs.
PYTEST_WORKERS ?= 2
test: install
	$(PY) -m pytest -q --durations=15 -n $(PYTEST_WORKERS) --dist loadfile tests

test-slow: install
	$(PY) -m pytest -q --durations=15 -n $(PYTEST_WORKERS) --dist loadfile -m slow tests

# Real-data benchmarks read PRETRAIN_LM_DATA_DIR (Multi30k, SST-2); the summary lists
# every ratio of this run against its goal (results/bench_summary.json). Beam search on
# trained weights runs when MULTI30K_RUN holds a run of transformer/benchmark_multi30k.gin.
MULTI30K_RUN ?= runs/multi30k
bench: install
	$(PY) -m benchmarks.bert_step
	$(PY) -m benchmarks.input_pipeline
	$(PY) -m benchmarks.transformer_mt $(if $(wildcard $(MULTI30K_RUN)/checkpoints),--trained_dir=$(MULTI30K_RUN))
	$(PY) -m benchmarks.finetune_step
	$(PY) -m benchmarks.awd_lstm
	$(PY) -m benchmarks.elmo
	$(PY) -m benchmarks.summary --since=14400 --archive

lint: install
	$(PY) -m ruff check .

clean:
	rm -rf runs/demo_bert_tiny
