"""The morphable face model: a neutral mesh plus a linear expression basis (design section 2).

``mesh = neutral + sum_d exp[d] * basis[d]``, then the head pose (`core.face.pose`).
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.errors import FlowVQError
from core.face.pose import apply_pose

__all__ = ["FaceModel", "FaceModelError"]

_ASSET_FORMAT = 1


class FaceModelError(FlowVQError):
    """A face-model file that is missing, malformed, or of another format version."""
    code = "face_model"


@dataclass(frozen=True, eq=False)
class FaceModel:
    """A morphable face: topology, neutral shape, named expression basis and regions.

    Shapes: neutral (V, 3) metres in model space (`core.face.pose`); faces (F, 3) vertex indices,
    counter-clockwise seen from outside; uv (V, 2) in [0, 1]; basis (D, V, 3) per-unit deltas;
    lower/upper (D,) the valid coefficient range; regions map a name to vertex indices.
    """

    name: str
    version: str
    neutral: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    basis: np.ndarray
    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    regions: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def id(self) -> str:
        """The identifier that takes carry, e.g. ``builtin-arkit52@1``."""
        return f"{self.name}@{self.version}"

    @property
    def n_vertices(self) -> int:
        return int(self.neutral.shape[0])

    @property
    def n_expressions(self) -> int:
        """D, the coefficient dimension. Nothing else in the project may hard-code it."""
        return int(self.basis.shape[0])

    def expression_mesh(self, exp: np.ndarray) -> np.ndarray:
        """Vertices for expression coefficients. Shapes: exp (..., D) -> (..., V, 3)."""
        exp = np.asarray(exp, dtype=np.float64)
        if exp.shape[-1] != self.n_expressions:
            raise FaceModelError(
                f"{self.id} has {self.n_expressions} expression coefficients, got {exp.shape[-1]}"
            )
        return self.neutral + np.einsum("...d,dvk->...vk", exp, self.basis)

    def posed_mesh(self, exp: np.ndarray, pose: np.ndarray) -> np.ndarray:
        """Vertices for coefficients and a head pose. Shapes: exp (..., D), pose (..., 6) -> (..., V, 3)."""
        return apply_pose(self.expression_mesh(exp), pose)

    def save(self, path: str | Path) -> None:
        """Write the model as one ``.npz`` (numpy arrays only: Blender's Python can read it)."""
        region_names = sorted(self.regions)
        arrays = {f"region_{k}": np.asarray(self.regions[k], dtype=np.int32) for k in region_names}
        np.savez_compressed(
            path,
            format=np.int32(_ASSET_FORMAT),
            name=np.str_(self.name),
            version=np.str_(self.version),
            neutral=self.neutral.astype(np.float32),
            faces=self.faces.astype(np.int32),
            uv=self.uv.astype(np.float32),
            basis=self.basis.astype(np.float32),
            names=np.array(self.names),
            lower=self.lower.astype(np.float32),
            upper=self.upper.astype(np.float32),
            region_names=np.array(region_names),
            **arrays,
        )

    @classmethod
    def load(cls, path: str | Path) -> "FaceModel":
        """Read a model written by `save`; raises `FaceModelError` on a missing or foreign file."""
        path = Path(path)
        if not path.is_file():
            raise FaceModelError(f"face model file not found: {path}")
        try:
            with np.load(path, allow_pickle=False) as data:
                if int(data["format"]) != _ASSET_FORMAT:
                    raise FaceModelError(
                        f"{path} has face-model format {int(data['format'])}, expected {_ASSET_FORMAT}"
                    )
                regions = {str(k): data[f"region_{k}"].astype(np.int64) for k in data["region_names"]}
                return cls(
                    name=str(data["name"]),
                    version=str(data["version"]),
                    neutral=data["neutral"].astype(np.float64),
                    faces=data["faces"].astype(np.int64),
                    uv=data["uv"].astype(np.float64),
                    basis=data["basis"].astype(np.float64),
                    names=tuple(str(n) for n in data["names"]),
                    lower=data["lower"].astype(np.float64),
                    upper=data["upper"].astype(np.float64),
                    regions=regions,
                )
        except (KeyError, ValueError, OSError) as exc:
            raise FaceModelError(f"{path} is not a FlowVQ face-model file: {exc}") from exc
