"""Shared fixtures: the built-in face model and the bundled real portraits."""

import numpy as np
import pytest


@pytest.fixture(scope="session")
def face():
    from core.face import builtin

    return builtin()


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    from core.face.build import bundled_photos

    return bundled_photos()


@pytest.fixture(scope="session")
def photo_landmarks(photos) -> dict[str, np.ndarray]:
    from core.face.landmarks import detect_landmarks

    return {name: detect_landmarks(img) for name, img in photos.items()}
