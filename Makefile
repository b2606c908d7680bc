# The README's two commands: `make train` and `make test`. Each sets up what is missing.
#
#   make train [CONFIG=...] [WORK_DIR=...] [OFFLINE=1] [TRAIN_ARGS='--amp ...']
#   make test  [PYTEST_ARGS='-m "not slow"']
#   make env   only the environment; then `source .venv/bin/activate` makes it your
#              python: python tools/train.py CONFIG, python tools/test.py CONFIG CKPT ...
#   make data  only KittiTiny (tools/prepare_data.py kitti_tiny)
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

.PHONY: help env data train test
help:
	@sed -n '1,/^$$/s/^# \{0,1\}//p' Makefile

env:
	bash tools/setup_env.sh

data: $(ENV)
	$(PY) tools/prepare_data.py kitti_tiny

train: $(ENV) data
	$(PY) tools/train.py $(CONFIG) --work-dir $(WORK_DIR) $(OFFLINE_ARGS) $(TRAIN_ARGS)

test: $(ENV) data
	$(PY) -m pytest $(PYTEST_ARGS)
