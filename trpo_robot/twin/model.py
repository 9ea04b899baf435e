"""Compiles the MuJoCo twin of an arm: its URDF plus the scene pieces of ``sim/``.

The URDF stays the single source of kinematics, inertias and limits; everything that only
the simulator needs (floor, target, velocity servos, damping, timestep) is added here with
the MjSpec API, so that the real arm and its twin can never disagree on geometry.
"""
from dataclasses import dataclass
import xml.etree.ElementTree as ET

import mujoco
import numpy as np

from trpo_robot.paths import share_file, urdf_path
from trpo_robot.twin.randomization import model_rng, Randomization
from trpo_robot.twin.settings import load_settings, RobotSettings

EE_SITE = 'ee'
TARGET_BODY = 'target'
TARGET_SITE = 'target'
HOME_KEY = 'home'
COLLISION_GROUP = 3  # hidden by default in the viewer and the renderer; <visual>s are group 1
# contype/conaffinity bits: the floor and pedestal are (1, 1). An arm geom of (2, 1) touches
# them but not another arm geom, because neither side's contype meets the other's affinity.
_ARM_ONLY_WORLD = (2, 1)
_ARM_SELF = (1, 1)
_PREFIX = 'urdf/'


@dataclass(frozen=True)
class JointLimits:
    """Limits of one URDF joint, as the real driver enforces them."""

    lower: float
    upper: float
    effort: float
    """N m; the servo's force range."""
    velocity: float
    """rad/s; the servo's command range."""


def urdf_joint_limits(path) -> dict[str, JointLimits]:
    """Revolute joints of a URDF with their limits, in file order.

    MuJoCo's URDF import keeps range and effort but drops the velocity limit, which the twin
    needs as the servo's command range, so the URDF is read directly.
    """
    limits = {}
    for joint in ET.parse(path).getroot().iter('joint'):
        if joint.get('type') not in ('revolute', 'continuous'):
            continue
        limit = joint.find('limit')
        if limit is None:
            raise ValueError(f'{path}: joint {joint.get("name")} has no <limit>')
        limits[joint.get('name')] = JointLimits(
            lower=float(limit.get('lower', '-inf')), upper=float(limit.get('upper', 'inf')),
            effort=float(limit.get('effort')), velocity=float(limit.get('velocity')))
    return limits


def build_model(robot: str, randomization: Randomization | None = None,
                seed: int = 0) -> mujoco.MjModel:
    """Compile the twin of ``robot`` ('ur5', 'ur5e' or 'dxl').

    With ``randomization``, link masses, damping and friction are drawn from its ranges with
    ``seed``; the same robot, randomization and seed always give the same model.
    """
    model = build_spec(robot).compile()
    if randomization is not None:
        randomize(model, nominal_values(model), randomization, model_rng(seed))
    return model


def build_spec(robot: str) -> mujoco.MjSpec:
    """The uncompiled nominal twin, for callers that want to add to it before compiling
    (randomization applies to a compiled model: ``randomize``)."""
    settings = load_settings(robot)
    path = urdf_path(settings.urdf)
    limits = urdf_joint_limits(path)
    arm = _load_arm(path, settings, limits)
    scene = _load_scene(settings)
    _attach_keeping_names(scene, arm)
    _add_servos(scene, settings, limits)
    scene.add_key(name=HOME_KEY, qpos=list(settings.home), ctrl=[0.0] * len(limits))
    return scene


def _attach_keeping_names(scene: mujoco.MjSpec, arm: mujoco.MjSpec) -> None:
    """Attach the arm at ``robot_mount`` with the URDF's own link and joint names.

    MuJoCo warns on every compile after an attach with an empty prefix, so the arm goes in
    under a temporary prefix that is then taken off again.
    """
    scene.attach(arm, frame=scene.frame('robot_mount'), prefix=_PREFIX)
    for group in (scene.bodies, scene.joints, scene.geoms, scene.sites, scene.frames,
                  scene.materials):
        for element in group:
            if element.name.startswith(_PREFIX):
                element.name = element.name[len(_PREFIX):]


def _read_urdf(path) -> mujoco.MjSpec:
    """Parse a URDF with the MuJoCo options it needs, without writing them into the file.

    By default MuJoCo's URDF import fuses fixed-joint links (erasing the ee link) and drops
    <visual> elements (so a link of several parts is drawn in one colour). Both are compile
    options that must be known while parsing, hence the <mujoco> extension element added to
    a copy of the text here rather than to the URDF that ROS tools also read.
    """
    root = ET.parse(path).getroot()
    extension = ET.SubElement(root, 'mujoco')
    ET.SubElement(extension, 'compiler', discardvisual='false', fusestatic='false')
    return mujoco.MjSpec.from_string(ET.tostring(root, encoding='unicode'))


def _load_arm(path, settings: RobotSettings, limits: dict) -> mujoco.MjSpec:
    arm = _read_urdf(path)
    names = [joint.name for joint in arm.joints]
    if names != list(limits):
        raise ValueError(f'{path}: MuJoCo joints {names} differ from URDF joints '
                         f'{list(limits)}')
    if len(names) != len(settings.kv):
        raise ValueError(f'{settings.name}: sim/robots.yaml lists {len(settings.kv)} joints, '
                         f'the URDF has {len(names)}')
    _configure_joints(arm, settings)
    _configure_collisions(arm, settings)
    ee = arm.body(settings.ee_link)
    if ee is None:
        raise ValueError(f'{path}: no link named {settings.ee_link!r}')
    ee.add_site(name=EE_SITE, size=[0.01, 0.01, 0.01], rgba=[0.9, 0.2, 0.2, 0.8], group=3)
    return arm


def _configure_joints(arm: mujoco.MjSpec, settings: RobotSettings) -> None:
    """Drive-train properties the URDF has no place for, and the controller's gravity model.

    Gravity compensation goes through the actuators (``actgravcomp``), so holding the arm
    up uses the same effort budget as moving it, as on the real drives.
    """
    for i, joint in enumerate(arm.joints):
        joint.damping = [settings.damping[i], 0.0, 0.0]
        joint.armature = settings.armature[i]
        joint.frictionloss = settings.frictionloss[i]
        joint.actgravcomp = True
    for body in arm.bodies:
        if body.first_joint() is not None:
            body.gravcomp = 1.0


def _configure_collisions(arm: mujoco.MjSpec, settings: RobotSettings) -> None:
    """Collision shapes touch the world (and each other only if asked); they are drawn
    hidden, since the <visual> shapes carry the colours."""
    contype, conaffinity = _ARM_SELF if settings.self_collision else _ARM_ONLY_WORLD
    for geom in arm.geoms:
        if geom.contype or geom.conaffinity:  # a <collision>; a <visual> touches nothing
            geom.contype, geom.conaffinity = contype, conaffinity
            geom.group = COLLISION_GROUP
            geom.rgba = [0.9, 0.5, 0.1, 0.4]


RANDOMIZED_FIELDS = ('body_mass', 'body_inertia', 'dof_damping', 'dof_frictionloss',
                     'geom_friction')
"""The fields of a compiled model that randomization scales."""


def nominal_values(model: mujoco.MjModel) -> dict[str, np.ndarray]:
    """Copies of the fields randomization scales, as compiled: every draw starts from
    these, so drawing again (each episode) never compounds the factors."""
    return {name: getattr(model, name).copy() for name in RANDOMIZED_FIELDS}


def randomize(model: mujoco.MjModel, nominal: dict, rand: Randomization,
              rng: np.random.Generator) -> dict:
    """Scale masses, damping and friction of a compiled model in place, from ``nominal``.

    Editing the compiled fields costs microseconds where recompiling costs tens of
    milliseconds, which is what makes a new arm per episode affordable. Draws come in a
    fixed order (moving links, then joints, then collision geoms), so a seed fixes the
    model. Returns the factors drawn, by link and joint name, for the run's records.
    """
    for name, values in nominal.items():
        getattr(model, name)[:] = values
    factors = {'mass': _scale_links(model, rand, rng)}
    factors['damping'], factors['friction'] = _scale_joints(model, rand, rng)
    factors['contact_friction'] = _scale_contacts(model, rand, rng)
    # Quantities compiled from the masses (subtree masses, inverse weights that soften
    # contacts and limits, the solver's mean inertia) follow the new masses.
    mujoco.mj_setConst(model, mujoco.MjData(model))
    model.stat.meaninertia = float(model.dof_M0.mean())  # as compiling sets it
    return factors


def _scale_links(model, rand, rng) -> dict:
    """One factor per moving link on its mass and inertia; a link welded to the world or
    to its parent never moves alone, so it keeps its mass."""
    factors = {}
    for body in range(model.nbody):
        if model.body_jntnum[body] == 0:
            continue
        scale = float(rng.uniform(*rand.mass_scale))
        model.body_mass[body] *= scale
        model.body_inertia[body] *= scale
        factors[model.body(body).name] = scale
    return factors


def _scale_joints(model, rand, rng) -> tuple[dict, dict]:
    damping, friction = {}, {}
    for joint in range(model.njnt):
        dofs = model.dof_jntid == joint
        name = model.joint(joint).name
        damping[name] = float(rng.uniform(*rand.damping_scale))
        model.dof_damping[dofs] *= damping[name]
        friction[name] = float(rng.uniform(*rand.friction_scale))
        model.dof_frictionloss[dofs] *= friction[name]
    return damping, friction


def _scale_contacts(model, rand, rng) -> dict:
    """Sliding friction of the arm's collision shapes, by link (a link may have several)."""
    factors = {}
    for geom in range(model.ngeom):
        if model.geom_group[geom] != COLLISION_GROUP:
            continue
        scale = float(rng.uniform(*rand.friction_scale))
        model.geom_friction[geom, 0] *= scale
        factors.setdefault(model.body(model.geom_bodyid[geom]).name, []).append(scale)
    return factors


def _load_scene(settings: RobotSettings) -> mujoco.MjSpec:
    scene = mujoco.MjSpec.from_file(str(share_file('sim', 'scene.xml')))
    scene.modelname = f'trpo_robot_{settings.name}'
    scene.option.timestep = settings.timestep
    # implicitfast integrates the servo gain and joint damping implicitly (stable, cheap).
    scene.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    scene.geom('floor').pos = [0.0, 0.0, settings.floor_height]
    if settings.pedestal_radius > 0 and settings.floor_height < 0:
        half = -settings.floor_height / 2
        scene.worldbody.add_geom(
            name='pedestal', type=mujoco.mjtGeom.mjGEOM_CYLINDER,
            size=[settings.pedestal_radius, half, 0.0], pos=[0.0, 0.0, -half],
            rgba=[0.3, 0.3, 0.32, 1.0])
    return scene


def release_servos(model: mujoco.MjModel, kv: np.ndarray, limp) -> None:
    """Let the velocity servos of the ``limp`` joints go (gain and its damping term zero)
    and give the others back their gains ``kv`` (the model's as built): a freedrive reset
    on the twin. Gravity compensation stays on, as a UR's freedrive or an operator's hand
    carries the arm's weight."""
    n = len(kv)
    gains = np.where(np.broadcast_to(np.asarray(limp, bool), (n,)), 0.0, kv)
    model.actuator_gainprm[:n, 0] = gains
    model.actuator_biasprm[:n, 2] = -gains


def _add_servos(scene: mujoco.MjSpec, settings: RobotSettings, limits: dict) -> None:
    """One velocity servo per joint, taking what speedj / Goal Velocity take: rad/s.

    Force range is the URDF effort and control range the URDF velocity limit, so that the
    twin saturates where the real drive does. The arm's weight is carried by gravity
    compensation through the same actuators (``_load_arm``), not by the servo: a servo
    stiff enough to hold a UR5 by itself (kv ~ 10^4) chatters at its force limit, because
    implicit integration drops the gain of a clamped actuator; and an integrating servo
    (``intvelocity``) winds up while saturated and then overshoots to twice the speed
    limit. Both were tried and measured.
    """
    for i, (name, limit) in enumerate(limits.items()):
        servo = scene.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        servo.set_to_velocity(kv=settings.kv[i])
        servo.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        servo.forcerange = [-limit.effort, limit.effort]
        servo.ctrllimited = mujoco.mjtLimited.mjLIMITED_TRUE
        servo.ctrlrange = [-limit.velocity, limit.velocity]
