"""trpo_robot: TRPO on real robot arms, with a MuJoCo twin and a ROS 2 edge.

Importing the package registers its gymnasium ids (trpo_robot/UR5Reacher2D-v0, ...), as
gymnasium plugins such as gymnasium_robotics do: `import trpo_robot` then `gym.make(id)`.
The registration imports gymnasium only (entry points are strings), not mujoco.
"""
__version__ = '0.1.0'

from trpo_robot import envs as _envs  # noqa: E402,F401 - registers the ids
