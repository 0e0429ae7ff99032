"""The morphable face model (design section 2): built-in ARKit-52 rig on the FaceMesh topology,
the user-supplied Basel Face Model, landmark fitting and the head-pose convention."""

from functools import lru_cache
from pathlib import Path

from core.face.model import FaceModel, FaceModelError

__all__ = ["FaceModel", "FaceModelError", "BUILTIN_ASSET", "builtin", "load_face_model"]

BUILTIN_ASSET = Path(__file__).with_name("assets") / "builtin-arkit52.npz"


@lru_cache(maxsize=1)
def builtin() -> FaceModel:
    """The built-in face model shipped with the package (no download)."""
    return FaceModel.load(BUILTIN_ASSET)


def load_face_model(path: str | Path | None = None) -> FaceModel:
    """The built-in model, a saved FlowVQ ``.npz`` model, or a Basel ``BFM_model_front.mat``."""
    if path is None:
        return builtin()
    path = Path(path)
    if path.suffix.lower() == ".mat":
        from core.face.bfm import load_bfm

        return load_bfm(path)
    return FaceModel.load(path)
