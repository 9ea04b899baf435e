"""The reference tasks (SenseAct, Mahmood et al. 2018), as data the environment reads.

A task says which joints the policy moves, how fast, from where, toward which targets, and
for how long. Workspace boxes and joint ranges are per task, inside the URDF limits, so the
shield keeps every episode in the region the task was designed for.
"""
from dataclasses import dataclass

import numpy as np

HALF_PI = np.pi / 2
UR5_HOME = (0.0, -HALF_PI, HALF_PI, -HALF_PI, -HALF_PI, 0.0)
DXL_HOME = (0.0, 0.3, 0.9)


@dataclass(frozen=True)
class Task:
    """One task: joints, speeds, timing, target region and reward weights."""

    name: str
    robot: str
    """Short robot name: 'ur5' or 'dxl' (the URDF is urdf/<urdf>.urdf)."""
    urdf: str
    ee_link: str
    actuated: tuple
    """Joints the policy commands; the others are held at zero velocity."""
    home: tuple
    """Full joint configuration the episode starts around."""
    joint_low: tuple
    """Lower limits of the actuated joints during the task, rad (inside the URDF's)."""
    joint_high: tuple
    max_velocity: float
    """Joint speed at action +-1, rad/s (SenseAct: 0.3 rad/s on the UR5)."""
    max_acceleration: float
    """Shield acceleration limit, rad/s^2."""
    agent_dt: float = 0.04
    """Agent step: the policy acts every 40 ms and its action is held in between."""
    episode_seconds: float = 4.0
    start_noise: float = 0.1
    """Start pose: home plus uniform noise of this size on the actuated joints, rad."""
    target_margin: float = 0.15
    """Targets are drawn from the joint range shrunk by this much at each end, rad."""
    moving_target: bool = False
    """Tracking: the target moves along a sinusoid in joint space during the episode."""
    target_speed: float = 0.5
    """Tracking: angular frequency of the target motion, rad/s."""
    success_distance: float = 0.05
    """An episode whose final end-effector distance is below this counts as a success, m."""
    action_cost: float = 0.01
    """Weight of the squared-action penalty (smooth motions spare the gearboxes)."""
    precision_bonus: float = 0.5
    """Weight of a bonus exp(-(d / precision_scale)^2) that sharpens the final approach."""
    precision_scale: float = 0.03
    workspace_margin: float = 0.05
    """The end-effector box is the task's reachable box grown by this much, m. Its lower
    face is the floor the shield keeps (the UR5 tasks reach 12-13 cm below the base plane,
    as an arm on a pedestal does); a cell with a higher table narrows joint_low/joint_high
    rather than clipping the box, so that no target lies outside it."""

    @property
    def episode_steps(self):
        return int(round(self.episode_seconds / self.agent_dt))


TASKS = {
    'ur5_reacher_2d': Task(
        name='ur5_reacher_2d', robot='ur5', urdf='ur5', ee_link='tool0',
        actuated=('shoulder_lift_joint', 'elbow_joint'), home=UR5_HOME,
        joint_low=(-2.3, 0.6), joint_high=(-0.9, 2.4), max_velocity=0.3,
        max_acceleration=3.0),
    'ur5_reacher_6d': Task(
        name='ur5_reacher_6d', robot='ur5', urdf='ur5', ee_link='tool0',
        actuated=('shoulder_pan_joint', 'shoulder_lift_joint', 'elbow_joint',
                  'wrist_1_joint', 'wrist_2_joint', 'wrist_3_joint'),
        home=UR5_HOME, joint_low=(-0.7, -2.3, 0.6, -2.6, -2.3, -1.0),
        joint_high=(0.7, -0.9, 2.4, -0.6, -0.9, 1.0), max_velocity=0.3,
        max_acceleration=3.0),
    'dxl_reacher': Task(
        name='dxl_reacher', robot='dxl', urdf='dxl_arm', ee_link='ee_link',
        actuated=('joint2', 'joint3'), home=DXL_HOME, joint_low=(-0.6, 0.0),
        joint_high=(1.2, 1.6), max_velocity=1.5, max_acceleration=15.0,
        episode_seconds=2.0, start_noise=0.15, success_distance=0.02,
        precision_scale=0.015, workspace_margin=0.03),
    'dxl_tracker': Task(
        name='dxl_tracker', robot='dxl', urdf='dxl_arm', ee_link='ee_link',
        actuated=('joint1',), home=DXL_HOME, joint_low=(-1.5,), joint_high=(1.5,),
        max_velocity=1.5, max_acceleration=15.0, episode_seconds=2.0, start_noise=0.3,
        moving_target=True, target_speed=1.5, success_distance=0.02,
        precision_scale=0.015, workspace_margin=0.03),
}


def get_task(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f'unknown task {name!r}; choose from {sorted(TASKS)}') from None
