# Two commands do all set-up on a fresh machine: `make learn` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MUJOCO_GL ?= egl
export MUJOCO_GL

.PHONY: learn test venv bench clean

$(STAMP): setup.py setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip setuptools wheel
	# torch is pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(PY) -m pip install 'torch==2.13.0'
	$(PY) -m pip install -e '.[ros,test]'
	touch $(STAMP)

venv: $(STAMP)

# The main job: learn the UR5 2-D reacher on the MuJoCo twin through the ROS graph
# (twin, actor and learner nodes; docs/ros.md).
LEARN_ARGS ?= learn --robot ur5 --task reacher_2d --out runs/ur5_reacher_2d

learn: $(STAMP)
	$(VENV)/bin/trpo-robot $(LEARN_ARGS)

test: $(STAMP)
	$(PY) -m pytest -q tests $(TEST_ARGS)

bench: $(STAMP)
	$(PY) -m pip install -e '.[bench]'
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
