"""Gymnasium entry point for the arm tasks on the MuJoCo twin."""
import functools

from trpo_robot.paths import urdf_path
from trpo_robot.robot.env import ArmEnv
from trpo_robot.robot.spec import RobotSpec
from trpo_robot.robot.tasks import get_task, Task

from .backend import MujocoBackend


def make_twin_env(task: str | Task, robot: str | None = None, mode: str = 'fast', seed: int = 0,
                  render_mode: str | None = None, width: int = 640, height: int = 480,
                  **backend_kwargs) -> ArmEnv:
    """ArmEnv over a MujocoBackend. task: a name, or a Task (e.g. a robot file's, with its
    agent step: RobotParams.task_spec()); robot overrides the task's robot (e.g. 'ur5e');
    render_mode='rgb_array' makes env.render() return width x height frames (MUJOCO_GL=egl
    or osmesa where there is no display)."""
    spec_task = task if isinstance(task, Task) else get_task(task)
    backend = MujocoBackend(robot or spec_task.robot, mode=mode, seed=seed, **backend_kwargs)
    spec = RobotSpec.from_urdf(urdf_path(spec_task.urdf), ee_link=spec_task.ee_link)
    renderer = None
    if render_mode == 'rgb_array':
        from .render import render_rgb
        renderer = functools.partial(render_rgb, backend, width, height)
    return ArmEnv(backend, spec_task, spec, render_mode=render_mode, renderer=renderer)
