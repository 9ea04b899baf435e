"""RobotSpec (numpy) against MuJoCo compiling the same URDF: two independent readings."""
import mujoco
import numpy as np
import pytest

from trpo_robot.paths import urdf_path
from trpo_robot.robot.spec import RobotSpec
from trpo_robot.twin.backend import MujocoBackend
from trpo_robot.twin.model import EE_SITE
from trpo_robot.twin.settings import load_settings


@pytest.fixture(params=['ur5', 'ur5e', 'dxl'], scope='module')
def pair(request):
    settings = load_settings(request.param)
    spec = RobotSpec.from_urdf(urdf_path(settings.urdf), ee_link=settings.ee_link)
    backend = MujocoBackend(request.param, noise_std=0.0)
    yield spec, backend
    backend.close()


def random_configurations(spec, count, seed):
    rng = np.random.default_rng(seed)
    lower = np.maximum(spec.lower, -np.pi)
    upper = np.minimum(spec.upper, np.pi)
    return rng.uniform(lower, upper, size=(count, spec.dof))


def test_joint_order_matches(pair):
    spec, backend = pair
    assert tuple(backend.joint_names) == spec.joint_names


def test_fk_matches_mujoco(pair):
    spec, backend = pair
    for q in random_configurations(spec, 25, seed=0):
        backend.reset_state(q)
        np.testing.assert_allclose(spec.fk(q), backend.ee_position(), atol=1e-9)


def test_link_positions_match_mujoco_bodies(pair):
    spec, backend = pair
    for q in random_configurations(spec, 10, seed=1):
        backend.reset_state(q)
        bodies = np.array(list(backend.body_positions().values()))
        ours = spec.link_positions(q)
        # MuJoCo lists the base too and merges an ee link that sits on the last joint.
        for point in ours:
            assert np.min(np.linalg.norm(bodies - point, axis=1)) < 1e-9


def test_jacobian_matches_mujoco(pair):
    spec, backend = pair
    model, data = backend.model, backend.data
    site = model.site(EE_SITE).id
    dofs = [model.jnt_dofadr[model.joint(name).id] for name in spec.joint_names]
    jacp = np.zeros((3, model.nv))
    for q in random_configurations(spec, 10, seed=2):
        backend.reset_state(q)
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        mujoco.mj_jacSite(model, data, jacp, None, site)
        np.testing.assert_allclose(spec.jacobian(q), jacp[:, dofs], atol=1e-9)
