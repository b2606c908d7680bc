# The README's commands: `make train`, `make test` and `make demo`. Each sets up what is
# missing.
#
#   make train [CONFIG=...] [WORK_DIR=...] [OFFLINE=1] [TRAIN_ARGS='--amp ...']
#   make test  [PYTEST_ARGS='-m "not slow"'] [PYTEST_WORKERS=auto]   ruff, then pytest
#   make lint  ruff only
#   make env   only the environment; then `source .venv/bin/activate` makes it your
#              python: python tools/train.py CONFIG, python tools/test.py CONFIG CKPT ...
#   make data  only KittiTiny (tools/prepare_data.py kitti_tiny)
#   make demo  [DEMO_ARGS='--cfg-options ...'] [DEMO_AMP=0|1]   Shapes, from scratch,
#              in minutes
#   PY=/path/to/python make test    use an existing environment (no .venv set-up)
#
# Without internet, tools/train.py warns that the pretrained weights cannot be
# downloaded and trains from random initialisation; OFFLINE=1 skips them without trying.

PY ?= .venv/bin/python
CONFIG ?= configs/frcnn_kitti_tiny.py
WORK_DIR ?= work_dirs/$(basename $(notdir $(CONFIG)))
# Where KittiTiny comes from (tools/prepare_data.py): a sibling shared/ copy if there is
# one, else the official download.
KITTI_TINY_SRC ?= $(wildcard ../shared/data/kitti_tiny)
export KITTI_TINY_SRC
# OFFLINE=1: no pretrained weights, train from random initialisation.
OFFLINE_ARGS := $(if $(OFFLINE),--cfg-options load_from=None model.backbone.init_cfg=None)
ENV := $(if $(filter .venv/bin/python,$(PY)),env)
# make test: pytest-xdist workers, one per core (each computes with one thread); the
# tests of a file stay on one worker, with their module fixtures.
PYTEST_WORKERS ?= auto

# make demo: generate Shapes, train configs/frcnn_shapes.py from random initialisation,
# test it, and draw its curves, detections and explain pictures into DEMO_DIR.
DEMO_CONFIG := configs/frcnn_shapes.py
DEMO_DIR ?= work_dirs/frcnn_shapes
DEMO_IMAGES := $(foreach i,000000 000001 000002 000003,data/shapes/JPEGImages/val_$(i).jpg)
DEMO_CKPT = $$(cat $(DEMO_DIR)/last_checkpoint)
# The demo trains with --amp (bfloat16 autocast) where the CPU computes bfloat16 natively
# (AVX512-BF16 or AMX): 0.75x the time of float32 on the 2-core machine it was measured
# on, the same mAP (docs/learning.md). Elsewhere it trains in float32, about a third
# longer. DEMO_AMP=1 or DEMO_AMP=0 chooses.
DEMO_AMP ?= $(if $(shell grep -qwE 'avx512_bf16|amx_bf16' /proc/cpuinfo 2>/dev/null && echo y),1,0)

.PHONY: help env data lint train test demo
help:
	@sed -n '1,/^$$/s/^# \{0,1\}//p' Makefile

env:
	bash tools/setup_env.sh

data: $(ENV)
	$(PY) tools/prepare_data.py kitti_tiny

train: $(ENV) data
	$(PY) tools/train.py $(CONFIG) --work-dir $(WORK_DIR) $(OFFLINE_ARGS) $(TRAIN_ARGS)

# ruff (settings in pyproject.toml): pyflakes, pycodestyle, import order.
lint: $(ENV)
	$(PY) -m ruff check .

test: $(ENV) data lint
	$(PY) -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

demo: $(ENV)
	$(PY) tools/prepare_data.py shapes
	$(PY) tools/train.py $(DEMO_CONFIG) --work-dir $(DEMO_DIR) $(if $(filter 1,$(DEMO_AMP)),--amp) \
		$(DEMO_ARGS)
	$(PY) tools/test.py $(DEMO_CONFIG) $(DEMO_CKPT) --work-dir $(DEMO_DIR)/test \
		> $(DEMO_DIR)/test.log 2>&1 || { tail -n 30 $(DEMO_DIR)/test.log; exit 1; }
	grep -E '^[|+]' $(DEMO_DIR)/test.log | tee $(DEMO_DIR)/ap_table.txt
	grep -o 'pascal_voc/mAP: [0-9.]*' $(DEMO_DIR)/test.log
	$(PY) tools/plot_curves.py $(DEMO_DIR) --title 'configs/frcnn_shapes.py, from scratch'
	$(PY) tools/infer.py $(DEMO_CONFIG) $(DEMO_CKPT) $(DEMO_IMAGES) --out-dir $(DEMO_DIR)/infer
	$(PY) tools/explain.py $(DEMO_CONFIG) $(word 1,$(DEMO_IMAGES)) --checkpoint $(DEMO_CKPT) \
		--gt-voc data/shapes/Annotations/val_000000.xml --out-dir $(DEMO_DIR)/explain
	@echo "make demo: the results are in $(DEMO_DIR)/ (ap_table.txt, curves.png, infer/, explain/)"
