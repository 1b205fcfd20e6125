# Two commands on a fresh machine:  `make run` (the webcam app)  and  `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SOURCE ?= 0
# The shipped default model's stages, in training order (training/configs/<stage>.yaml; output runs/<stage>).
DEFAULT_CHAIN := default/stage1 default/stage2 default/stage3 default/stage4 default/stage5

.PHONY: setup run demo train test benchmark

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(VENV)/.installed

run: setup
	$(PY) -m realtime.webcam --source $(SOURCE)

train: setup  # the shipped default model: the stages of DEFAULT_CHAIN in order, each from the previous one's best.pt
	@for stage in $(DEFAULT_CHAIN); do \
		echo "$(PY) -m training.run --config training/configs/$$stage.yaml"; \
		$(PY) -m training.run --config training/configs/$$stage.yaml || exit $$?; \
	done

test: setup
	$(PY) -m pytest -q tests

benchmark: setup
	$(PY) -m training.benchmark
	$(PY) -m realtime.benchmark
