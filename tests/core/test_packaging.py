"""The installed environment has the pins the project relies on."""

from importlib import metadata

import numpy as np


def _distributions_providing(module: str) -> list[str]:
    found = []
    for dist in metadata.distributions():
        files = dist.files or []
        if any(str(f).split("/")[0] == module for f in files):
            found.append(dist.metadata["Name"])
    return sorted(set(found))


def test_exactly_one_opencv_distribution_provides_cv2():
    import cv2

    assert len(_distributions_providing("cv2")) == 1, _distributions_providing("cv2")
    ok, png = cv2.imencode(".png", np.zeros((4, 4, 3), dtype=np.uint8))
    assert ok and png.size > 0


def test_numpy_is_1x_for_bpy_and_mediapipe():
    assert int(np.__version__.split(".")[0]) == 1


def test_flowvq_console_command_is_installed():
    scripts = {ep.name: ep.value for ep in metadata.entry_points(group="console_scripts")}
    assert scripts.get("flowvq") == "core.cli:main"
