"""Helpers shared by the add-on tests: preview frames on disk, the expected curves of a take,
and checks that a scene holds a take exactly."""

import socket
from pathlib import Path

import numpy as np

FRAME_W, FRAME_H = 24, 32


def write_frames(bpy, directory: Path, count: int) -> Path:
    """``count`` small PNG frames ``00000.png``... (frame k's red channel is k / count)."""
    directory.mkdir(parents=True, exist_ok=True)
    image = bpy.data.images.new("frames", FRAME_W, FRAME_H)
    image.file_format = "PNG"
    for k in range(count):
        image.pixels.foreach_set(np.tile([k / count, 0.0, 0.0, 1.0], FRAME_W * FRAME_H).astype(np.float32))
        image.filepath_raw = str(directory / f"{k:05d}.png")
        image.save()
    bpy.data.images.remove(image)
    return directory


def pose_channels(pose: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """docs/api.md's mapping: rotation_euler (pitch, -roll, yaw), location (tx, -tz, ty)."""
    pose = np.asarray(pose)
    return (np.stack([pose[:, 0], -pose[:, 2], pose[:, 1]], 1),
            np.stack([pose[:, 3], -pose[:, 5], pose[:, 4]], 1))


def assert_scene_plays_take(bpy, head, take: dict, frame_start: int, frames: list[int], atol: float) -> None:
    """After ``frame_set``, every shape key and the head's delta transforms equal the take's row
    (the FlowVQ head stands at the origin unrotated, so its deltas read as the pose itself)."""
    euler, location = pose_channels(take["pose"])
    for k in frames:
        bpy.context.scene.frame_set(frame_start + k)
        values = [head.data.shape_keys.key_blocks[n].value for n in take["names"]]
        np.testing.assert_allclose(values, take["exp"][k], atol=atol)
        np.testing.assert_allclose(tuple(head.delta_rotation_euler), euler[k], atol=atol)
        np.testing.assert_allclose(tuple(head.delta_location), location[k], atol=atol)


def closed_port() -> int:
    """A local port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
