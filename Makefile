# Two commands on a fresh machine:  `make run` (the webcam app)  and  `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SOURCE ?= 0

.PHONY: setup run demo train test benchmark

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

run: setup
	$(PY) -m realtime.webcam --source $(SOURCE)

train: setup  # the shipped default model: five stages, each from the previous one's best.pt
	$(PY) -m training.run --config training/configs/default.yaml
	$(PY) -m training.run --config training/configs/default_continue.yaml
	$(PY) -m training.run --config training/configs/default_stage3.yaml
	$(PY) -m training.run --config training/configs/default_stage4.yaml
	$(PY) -m training.run --config training/configs/default_stage5.yaml

test: setup
	$(PY) -m pytest -q tests

benchmark: setup
	$(PY) -m training.benchmark
	$(PY) -m realtime.benchmark
