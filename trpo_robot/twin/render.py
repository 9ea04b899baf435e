"""Pictures of the twin, for videos and for a person checking a model by eye.

Rendering needs an OpenGL context: set MUJOCO_GL=egl (GPU or headless) or osmesa
(software) before mujoco is imported. Nothing in training depends on this module.
"""
import mujoco
import numpy as np


def render_rgb(backend, width: int = 640, height: int = 480, camera: str | int = -1,
               ) -> np.ndarray:
    """One RGB frame (height, width, 3) of a ``MujocoBackend``'s current state.

    The renderer is made and freed per call: simple and leak-free, at a few ms per frame;
    a video writer that needs speed should keep its own ``mujoco.Renderer``.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f'width and height must be positive, got {width} x {height}')
    model = backend.model
    width = min(width, model.vis.global_.offwidth)
    height = min(height, model.vis.global_.offheight)
    # Poses as of now: after mj_step they describe the state one physics step earlier.
    mujoco.mj_kinematics(model, backend.data)
    with mujoco.Renderer(model, height=height, width=width) as renderer:
        renderer.update_scene(backend.data, camera=camera)
        return renderer.render().copy()
