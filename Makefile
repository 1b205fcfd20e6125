# Two commands on a fresh machine:  `make run` (the webcam app)  and  `make test` (`make test-all`: as CI).
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
SOURCE ?= 0
DEMO_OUT ?= outputs/demo
# The shipped models' stages, in training order (training/configs/<stage>.yaml; output runs/<stage>):
# weights/default.pt and weights/fast.pt.
DEFAULT_CHAIN := default/stage1 default/stage2
FAST_CHAIN := fast/stage1 fast/stage2 fast/stage3 fast/stage4 fast/stage5 fast/stage6

.PHONY: setup run demo train train-fast measure test test-all benchmark

BIN := $(VENV)/bin

# The requirements, then this checkout as an editable package: the fer-* commands, and imports from any folder.
$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

setup: $(VENV)/.installed

run: setup  # exit status 1 is a failure the user can fix (no camera, no display): point to the demo
	@echo "$(BIN)/fer-webcam --source $(SOURCE)"
	@$(BIN)/fer-webcam --source $(SOURCE) || { status=$$?; if [ $$status -eq 1 ]; then \
		echo "No camera or display here? 'make demo' annotates the sample photos and clip in samples/ instead." >&2; \
	fi; exit $$status; }

demo: setup  # no camera or display needed: annotates the sample media in samples/ (samples/SOURCE.md)
	$(BIN)/fer-annotate samples/photos -o $(DEMO_OUT)/photos --json $(DEMO_OUT)/photos.json --no-progress
	$(BIN)/fer-annotate samples/portraits.mp4 -o $(DEMO_OUT)/portraits.mp4 --json $(DEMO_OUT)/portraits.json --no-progress
	@echo "Demo results:"
	@echo "  $(DEMO_OUT)/photos/         the sample photos, annotated"
	@echo "  $(DEMO_OUT)/portraits.mp4   the sample clip, annotated"
	@echo "  $(DEMO_OUT)/*.json          each face's box, emotion and probabilities"

# A stage whose run folder already holds a run is refused: make train TRAIN_FLAGS=--overwrite starts afresh.
TRAIN_FLAGS ?=
CHAIN ?= $(DEFAULT_CHAIN)
train: setup  # the stages of CHAIN in order, each from the previous one's best.pt (default: DEFAULT_CHAIN, the shipped default model)
	@for stage in $(CHAIN); do \
		echo "$(PY) -m training.run --config training/configs/$$stage.yaml $(TRAIN_FLAGS)"; \
		$(PY) -m training.run --config training/configs/$$stage.yaml $(TRAIN_FLAGS) || exit $$?; \
	done

train-fast:  # the shipped fast model (weights/fast.pt): the stages of FAST_CHAIN
	@$(MAKE) --no-print-directory train CHAIN="$(FAST_CHAIN)"

# The figures a model card needs (weights/README.md) for CHECKPOINT, e.g. make measure CHECKPOINT=runs/x/best.pt:
# it is calibrated and its uncertain-face limits stored in it, in place (a .onnx beside it re-exported); the
# figures go to eval/<name>/ beside it. About half an hour for the default model on 2 cores; pause training first.
CHECKPOINT ?=
measure: setup
	@test -n "$(CHECKPOINT)" || { echo "give the checkpoint to measure: make measure CHECKPOINT=runs/x/best.pt" >&2; exit 2; }
	$(PY) -m training.calibrate $(CHECKPOINT)
	$(PY) -m training.evaluate $(CHECKPOINT) --tta none flip tencrop --corrupted
	$(PY) -m tools.readability_curves --checkpoint $(CHECKPOINT) --store
	$(PY) -m tools.benchmark --checkpoint $(CHECKPOINT) --modes throughput

test: setup  # the quick subset: everything but the tests marked slow
	$(PY) -m pytest -q -m "not slow" tests

test-all: setup  # every test, as CI runs them
	$(PY) -m pytest -q tests

benchmark: setup
	$(PY) -m training.benchmark
	$(PY) -m tools.benchmark
