"""The generated scene rendered with Cycles on the CPU: the head is in the picture, its mouth is
open on a voiced frame and closed on a silent one (the background shows through the lips)."""

import math

import numpy as np

from .test_scene import apply

SIZE = 96
DARK = 0.02


def setup_render(bpy, head) -> None:
    """Tiny Cycles CPU render: front orthographic camera on the head, a sun, black world."""
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device, scene.cycles.samples, scene.cycles.use_denoising = "CPU", 4, False
    scene.render.threads_mode, scene.render.threads = "FIXED", 1
    scene.render.resolution_x = scene.render.resolution_y = SIZE
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    camera = bpy.data.objects.new("camera", bpy.data.cameras.new("camera"))
    camera.data.type, camera.data.ortho_scale = "ORTHO", head.dimensions.z * 1.3
    camera.location = (head.location.x, head.location.y - 1.0, head.location.z)
    camera.rotation_euler = (math.pi / 2, 0.0, 0.0)
    sun = bpy.data.objects.new("sun", bpy.data.lights.new("sun", "SUN"))
    sun.rotation_euler, sun.data.energy = (math.pi / 2, 0.0, 0.0), 4.0
    for obj in (camera, sun):
        scene.collection.objects.link(obj)
    scene.camera = camera


def render(bpy, frame: int, path) -> np.ndarray:
    """Render ``frame`` to ``path``; its luminance, rows top to bottom. Shapes: (SIZE, SIZE)."""
    scene = bpy.context.scene
    scene.frame_set(frame)
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    image = bpy.data.images.load(str(path))
    pixels = np.array(image.pixels[:]).reshape(SIZE, SIZE, 4)[::-1, :, :3]
    bpy.data.images.remove(image)
    return pixels.mean(axis=2)


def lips_box(bpy, head, lips: np.ndarray) -> tuple[slice, slice]:
    """Pixel rows and columns around the lips' vertices at the current frame."""
    from bpy_extras.object_utils import world_to_camera_view

    scene = bpy.context.scene
    mesh = head.evaluated_get(bpy.context.evaluated_depsgraph_get()).to_mesh()
    points = [world_to_camera_view(scene, scene.camera, head.matrix_world @ mesh.vertices[i].co) for i in lips]
    xs = np.array([p.x for p in points]) * SIZE
    ys = (1.0 - np.array([p.y for p in points])) * SIZE
    return slice(int(ys.min()), int(np.ceil(ys.max()))), slice(int(xs.min()), int(np.ceil(xs.max())))


def test_cycles_shows_the_mouth_open_when_voiced_and_closed_when_silent(bpy_empty, wire_takes, face_npz,
                                                                       face, tmp_path):
    bpy = bpy_empty
    take = wire_takes[0]
    apply(bpy, [take], face_npz)
    head = bpy.context.scene.flowvq.head
    jaw = np.asarray(take["exp"])[:, take["names"].index("jawOpen")]
    voiced, silent = int(np.argmax(jaw)), int(np.argmin(jaw))
    assert jaw[voiced] > 0.3 and jaw[silent] < 0.05
    setup_render(bpy, head)
    dark_in_lips = {}
    for name, k in (("voiced", voiced), ("silent", silent)):
        luminance = render(bpy, 1 + k, tmp_path / f"{name}.png")
        assert (luminance > DARK).mean() > 0.3, "the head does not fill the picture"
        rows, cols = lips_box(bpy, head, face.regions["inner_lips"])
        dark_in_lips[name] = int((luminance[rows, cols] <= DARK).sum())
    assert dark_in_lips["voiced"] >= 4
    assert dark_in_lips["silent"] == 0
