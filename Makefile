# Two commands do all set-up on a fresh machine: `make learn` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
MUJOCO_GL ?= egl
export MUJOCO_GL

# The real ROS 2 launch system (launch, launch_ros, ros2 launch) as wheels built from the
# official sources, for machines without a ROS distribution (README.md there). They sit
# beside the project, never in it: CI puts shared/ next to the clone. Where the folder is
# absent nothing is installed and the tests that need launch skip, saying so; on a ROS
# machine the sourced distribution's launch is used.
ROS2_LAUNCH ?= ../shared/ros2-launch
LAUNCH_WHEELS := $(wildcard $(ROS2_LAUNCH)/wheels/*.whl)
LAUNCH_STAMP := $(VENV)/.launch-installed

.PHONY: learn test venv bench clean

$(STAMP): setup.py setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip setuptools wheel
	# torch is pinned: an unpinned torch pulls a multi-GB CUDA build.
	$(PY) -m pip install 'torch==2.13.0'
	$(PY) -m pip install -e '.[ros,test]'
	touch $(STAMP)

# Order as in that README: lark last (a ROS wheel pulls lark-parser, which owns the same
# module name), the launch wheels without dependencies (they name ament_index_python, which
# PyPI calls ros-ament-index-python).
$(LAUNCH_STAMP): $(STAMP) $(LAUNCH_WHEELS)
	$(PY) -m pip install osrf-pycommon pyyaml importlib-metadata argcomplete packaging \
		psutil ros-lifecycle-msgs ros-rcl-interfaces ros-ament-index-python
	$(PY) -m pip install lark
	$(PY) -m pip install --no-deps $(LAUNCH_WHEELS)
	touch $(LAUNCH_STAMP)

# The editable install plus its ament layout (share/trpo_robot, the ament index marker,
# lib/trpo_robot/<console script>), redone every time because it is cheap and follows the
# working copy (tools/ament_develop.py; docs/ros.md, "Installing").
venv: $(STAMP) $(if $(LAUNCH_WHEELS),$(LAUNCH_STAMP))
	$(PY) tools/ament_develop.py

# The main job: learn the UR5 2-D reacher on the MuJoCo twin through the ROS graph
# (twin, actor and learner nodes; docs/ros.md).
LEARN_ARGS ?= learn --robot ur5 --task reacher_2d --out runs/ur5_reacher_2d

learn: venv
	$(VENV)/bin/trpo-robot $(LEARN_ARGS)

# TESTS: what to run (default the whole suite); TEST_ARGS: extra pytest options.
#   make test TESTS=tests/test_launch.py TEST_ARGS='-x'
TESTS ?= tests

test: venv
	$(PY) -m pytest -q $(TESTS) $(TEST_ARGS)

bench: venv
	$(PY) -m pip install -e '.[bench]'
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
