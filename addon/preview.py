"""Preview frames: where a take's frames folder lives, and a rendered image sequence on an
emission plane beside the head.

A take keeps its frames folder relative to the saved .blend (``//flowvq_frames/...``) when it lies
beside it, so the folder moves with the file; `before_save` and `after_save` keep that true when
the .blend is saved for the first time or under another name.
"""

import math
import tempfile
from pathlib import Path

import bpy
import numpy as np
from bpy.app.handlers import persistent

__all__ = ["frames_root", "stored_frames_dir", "frames_dir_path", "rebase_frames_dirs", "before_save",
           "after_save", "load_sequence", "ensure_plane", "show_sequence", "place_plane", "PLANE_GAP"]

# Gap between the head's bounding box and the plane, as a fraction of the head's height.
PLANE_GAP = 0.25
FIRST_FRAME = "00000.png"


def frames_root(blend_filepath: str) -> Path:
    """Where preview frames go: ``flowvq_frames`` next to the saved .blend, or in the temp folder
    for an unsaved file."""
    base = Path(blend_filepath).parent if blend_filepath else Path(tempfile.gettempdir())
    return base / "flowvq_frames"


def _blend_folder(blend_filepath: str) -> str | None:
    """The folder of the .blend ``blend_filepath``; None for an unsaved file (empty path)."""
    return str(Path(blend_filepath).parent) if blend_filepath else None


def stored_frames_dir(folder: Path, blend_filepath: str) -> str:
    """How a take stores the frames folder ``folder``: relative (``//...``) when it lies in the
    folder of the saved .blend ``blend_filepath``, so it moves with the file; absolute otherwise
    (an unsaved file's frames in the temp folder stay where they are)."""
    base = _blend_folder(blend_filepath)
    if base is not None and folder.is_relative_to(base):
        return bpy.path.relpath(str(folder), start=base)
    return str(folder)


def frames_dir_path(stored: str, blend_filepath: str) -> Path:
    """The absolute folder a take's stored frames folder names, a relative one read from the
    folder of the .blend ``blend_filepath``."""
    return Path(bpy.path.abspath(stored, start=_blend_folder(blend_filepath)))


def rebase_frames_dirs(old_blend: str, new_blend: str) -> None:
    """Re-store every take's frames folder, read relative to ``old_blend``, for ``new_blend``."""
    for scene in bpy.data.scenes:
        for item in scene.flowvq.take_items:
            if item.frames_dir:
                stored = stored_frames_dir(frames_dir_path(item.frames_dir, old_blend), new_blend)
                if stored != item.frames_dir:
                    item.frames_dir = stored


@persistent
def before_save(filepath: str, _unused: object = None) -> None:
    """``save_pre`` handler: the file is written with frames folders relative to where it goes."""
    rebase_frames_dirs(bpy.data.filepath, filepath)


@persistent
def after_save(filepath: str, _unused: object = None) -> None:
    """``save_post`` handler: frames folders relative to the open file again (which is not the
    written one after *Save Copy*)."""
    rebase_frames_dirs(filepath, bpy.data.filepath)


def load_sequence(directory: Path) -> bpy.types.Image:
    """The frames ``00000.png``, ``00001.png``, ... of ``directory`` as one image sequence."""
    image = bpy.data.images.load(str(directory / FIRST_FRAME), check_existing=False)
    image.source = "SEQUENCE"
    return image


def _new_plane_mesh(name: str) -> bpy.types.Mesh:
    """A unit square in the XZ plane facing -Y (the front view), with UVs covering the image."""
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata([(-0.5, 0.0, -0.5), (0.5, 0.0, -0.5), (0.5, 0.0, 0.5), (-0.5, 0.0, 0.5)], [],
                     [(0, 1, 2, 3)])
    uv_layer = mesh.uv_layers.new(name="UVMap")
    uv_layer.data.foreach_set("uv", [0.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 1.0])
    mesh.update()
    return mesh


def _new_material(name: str) -> bpy.types.Material:
    """Image texture -> emission -> output: the frames show their own colours, unlit."""
    material = bpy.data.materials.new(name)
    if bpy.app.version < (5, 0, 0):  # node trees are always on from 5.0 (the flag is deprecated)
        material.use_nodes = True
    nodes, links = material.node_tree.nodes, material.node_tree.links
    nodes.clear()
    texture = nodes.new("ShaderNodeTexImage")
    emission = nodes.new("ShaderNodeEmission")
    output = nodes.new("ShaderNodeOutputMaterial")
    links.new(texture.outputs["Color"], emission.inputs["Color"])
    links.new(emission.outputs["Emission"], output.inputs["Surface"])
    return material


def ensure_plane(plane: bpy.types.Object | None, head: bpy.types.Object,
                 collection: bpy.types.Collection) -> bpy.types.Object:
    """``plane`` if it still exists, else a new preview plane named after ``head``."""
    if plane is not None and plane.name in bpy.data.objects:
        return plane
    name = f"{head.name} preview"
    plane = bpy.data.objects.new(name, _new_plane_mesh(name))
    plane.data.materials.append(_new_material(name))
    collection.objects.link(plane)
    return plane


def _texture_node(plane: bpy.types.Object) -> bpy.types.ShaderNodeTexImage:
    """The plane material's image node."""
    return next(n for n in plane.data.materials[0].node_tree.nodes if n.type == "TEX_IMAGE")


def show_sequence(plane: bpy.types.Object, image: bpy.types.Image, frame_start: int, frame_count: int) -> None:
    """Show ``image`` (a sequence of ``frame_count`` frames) on ``plane`` so that scene frame
    ``frame_start`` shows file 00000."""
    node = _texture_node(plane)
    node.image = image
    user = node.image_user
    user.frame_duration = frame_count
    user.frame_start = frame_start
    user.frame_offset = -1  # the file number is (scene frame - frame_start + 1) + offset
    user.use_auto_refresh = True


def place_plane(plane: bpy.types.Object, low: np.ndarray, high: np.ndarray, faces_plus_y: bool = False) -> None:
    """Stand the plane upright beside the world-space box ``low``..``high`` (the face), looking the
    way the face looks: as tall as the box, with its image's aspect, `PLANE_GAP` of that height to
    the right as seen from in front (+X for a face looking -Y; for one looking +Y, ``faces_plus_y``,
    the plane turned half round on -X, so its image is not seen mirrored), centred on the box's
    height and depth. The plane has no parent, so these are world coordinates.
    Shapes: low (3,), high (3,)."""
    plane.parent = None
    width, height = _texture_node(plane).image.size
    size = max(float(high[2] - low[2]), 1e-3)
    plane.rotation_euler = (0.0, 0.0, math.pi if faces_plus_y else 0.0)
    plane.scale = (size * width / max(height, 1), 1.0, size)
    centre = (np.asarray(low) + np.asarray(high)) / 2
    offset = size * PLANE_GAP + plane.scale.x / 2
    x = float(low[0]) - offset if faces_plus_y else float(high[0]) + offset
    plane.location = (x, float(centre[1]), float(centre[2]))
