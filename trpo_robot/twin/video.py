"""Video frames of the twin showing what a person checks a policy by: the arm, the target,
the workspace box the shield keeps the end effector in, and the steps where it stepped in.

One ``mujoco.Renderer`` serves a whole video: making one per frame (as ``render_rgb`` does
for single pictures) opens a GL context each time, which would dominate a rollout's cost.
The overlays are drawn in two places on purpose: the box and the end-effector marker as
scene geoms, so the arm hides them where it is in front; the intervention border and
caption into the pixels, so that they can be seen whatever the camera shows.
"""
import itertools
import warnings

import mujoco
import numpy as np
from PIL import Image, ImageDraw

from trpo_robot.twin.model import TARGET_SITE

BOX_RGBA = (1.0, 0.45, 0.0, 1.0)
"""Orange (yellow where lit): far from the sky, floor, arm and target colours, so that a
test can find it."""
EE_RGBA = (0.85, 0.2, 0.85, 0.85)
"""Magenta: unlike the arms' greys and blues and the green target."""
TARGET_HALO_RGBA = (0.1, 0.9, 0.2, 0.5)
"""A see-through sphere the size of the end-effector marker around the target, whose own
2 cm site is a few pixels wide in a small video of a UR5: overlap then means 'reached'."""
MARKER_FRACTION = 0.025
"""Marker radius as a share of the box's diagonal: 4 cm on a UR5, wider than its wrist,
which would hide a smaller marker at the flange."""
ALERT_RGBA = (0.95, 0.05, 0.05, 1.0)
ALERT_RGB = (242, 13, 13)
BORDER_FRACTION = 0.02
"""Border width as a share of the frame's shorter side: visible at 160 px and at 1080."""


class RenderError(RuntimeError):
    """No OpenGL context could be made for MuJoCo (no display and no headless backend)."""


def box_edges(low, high) -> list[tuple[np.ndarray, np.ndarray]]:
    """The 12 edges of an axis-aligned box as (start, end) corner pairs."""
    low, high = np.asarray(low, float), np.asarray(high, float)
    corners = {c: np.where(c, high, low) for c in itertools.product((0, 1), repeat=3)}
    return [(corners[c], corners[c[:axis] + (1,) + c[axis + 1:]])
            for c in corners for axis in range(3) if c[axis] == 0]


def box_camera(low, high, azimuth=120.0, elevation=-20.0, fovy=45.0,
               include=(0.0, 0.0, 0.0)) -> mujoco.MjvCamera:
    """A free camera that frames the box and the point ``include`` (the arm's base, so the
    whole arm shows and not only the space its end effector reaches)."""
    points = np.vstack([np.asarray(low, float), np.asarray(high, float),
                        np.asarray(include, float)])
    lo, hi = points.min(0), points.max(0)
    radius = 0.5 * float(np.linalg.norm(hi - lo))
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_FREE
    camera.lookat[:] = 0.5 * (lo + hi)
    camera.distance = 0.9 * radius / np.sin(np.radians(fovy) / 2)
    camera.azimuth, camera.elevation = azimuth, elevation
    return camera


def add_box_edges(scene: mujoco.MjvScene, low, high, radius: float,
                  rgba=BOX_RGBA) -> None:
    """Thin capsules along the box's edges, after ``update_scene`` (which clears them)."""
    for start, end in box_edges(low, high):
        geom = _new_geom(scene, rgba)
        mujoco.mjv_connector(geom, mujoco.mjtGeom.mjGEOM_CAPSULE, radius, start, end)


def add_marker(scene: mujoco.MjvScene, position, radius: float, rgba) -> None:
    """A sphere at ``position``: the end effector, which no mesh marks, or the target's
    halo."""
    geom = _new_geom(scene, rgba)
    geom.size[:] = radius
    geom.pos[:] = position


def _new_geom(scene, rgba):
    """The scene's next free geom, a zero-size sphere of this colour."""
    if scene.ngeom >= scene.maxgeom:
        raise RenderError(f'the scene is full ({scene.maxgeom} geoms); make the Renderer '
                          'with a larger max_geom')
    geom = scene.geoms[scene.ngeom]
    mujoco.mjv_initGeom(geom, mujoco.mjtGeom.mjGEOM_SPHERE, np.zeros(3), np.zeros(3),
                        np.eye(3).ravel(), np.asarray(rgba, np.float32))
    geom.emission = 0.4  # the overlay colours stay recognisable in shade
    scene.ngeom += 1
    return geom


def mark_interventions(frame: np.ndarray, names) -> np.ndarray:
    """A copy of the frame with a red border and the shield's intervention names written at
    the bottom; the frame itself if there were none, so that clean steps cost nothing."""
    if not names:
        return frame
    h, w = frame.shape[:2]
    b = max(2, int(round(BORDER_FRACTION * min(h, w))))
    out = _caption(frame, 'shield: ' + ', '.join(names), b)
    for edge in (out[:b], out[-b:], out[:, :b], out[:, -b:]):  # last: over a long caption
        edge[...] = ALERT_RGB
    return out


def _caption(frame, text, margin):
    image = Image.fromarray(frame)
    draw = ImageDraw.Draw(image)
    _, top, right, bottom = draw.textbbox((0, 0), text)
    x, y = margin + 3, frame.shape[0] - margin - 3 - (bottom - top)
    draw.rectangle((x - 2, y - 2 + top, x + right + 2, y + bottom + 2), fill=(0, 0, 0))
    draw.text((x, y), text, fill=ALERT_RGB)
    return np.array(image)


class FrameDrawer:
    """Draws a ``MujocoBackend``'s current state with the overlays, one frame per call.

    A context manager: the GL context it holds is freed on exit.
    """

    def __init__(self, backend, box, width: int = 320, height: int = 240,
                 overlays: bool = True, shadows: bool = False):
        """box: (low, high) of the workspace, as the shield's config holds it; overlays=False
        draws the plain scene (with the same camera), for comparison."""
        if width <= 0 or height <= 0:
            raise ValueError(f'width and height must be positive, got {width} x {height}')
        self.backend, self.overlays = backend, overlays
        self.low, self.high = (np.asarray(b, float) for b in box)
        model = backend.model
        vis = model.vis.global_
        # The offscreen buffer (640 x 480 in the scene) grows to the video's size.
        vis.offwidth, vis.offheight = max(vis.offwidth, width), max(vis.offheight, height)
        self.camera = box_camera(self.low, self.high, vis.azimuth, vis.elevation, vis.fovy)
        # At least a pixel wide at the box's centre, or a small video shows only a blur.
        pixel = 2 * self.camera.distance * np.tan(np.radians(vis.fovy) / 2) / height
        diagonal = float(np.linalg.norm(self.high - self.low))
        self._edge = max(0.004 * diagonal, 0.6 * pixel)
        self._marker = max(MARKER_FRACTION * diagonal, 3 * pixel)
        self._target = model.site(TARGET_SITE).id
        self._renderer = _open_renderer(model, width, height)
        # Shadow maps are three quarters of a frame's cost under software GL (osmesa, or
        # EGL without a GPU): a 100-step episode would take a minute instead of ten seconds.
        self._renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = shadows

    def draw(self, names=()) -> np.ndarray:
        """The frame (height, width, 3) uint8; names: the shield's interventions on the step
        that led here (info['intervention_names']), drawn in red."""
        model, data = self.backend.model, self.backend.data
        # Poses as of now: after mj_step they describe the state one physics step earlier.
        mujoco.mj_kinematics(model, data)
        self._renderer.update_scene(data, camera=self.camera)
        if self.overlays:
            scene = self._renderer.scene
            add_box_edges(scene, self.low, self.high, self._edge)
            add_marker(scene, data.site_xpos[self._target], self._marker, TARGET_HALO_RGBA)
            add_marker(scene, self.backend.ee_position(), self._marker,
                       ALERT_RGBA if names else EE_RGBA)
        frame = self._renderer.render()
        return mark_interventions(frame, list(names)) if self.overlays else frame

    def close(self) -> None:
        self._renderer.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _open_renderer(model, width, height) -> mujoco.Renderer:
    try:
        with warnings.catch_warnings():
            # GLFW (MuJoCo's choice without MUJOCO_GL) warns before it fails: one cause,
            # one line, the error below.
            warnings.simplefilter('ignore')
            return mujoco.Renderer(model, height=height, width=width)
    except (mujoco.FatalError, RuntimeError, ImportError, OSError, AttributeError) as e:
        raise RenderError(f'no OpenGL context for MuJoCo ({_first_line(e)}); set '
                          'MUJOCO_GL=egl or osmesa') from None


def _first_line(error) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
