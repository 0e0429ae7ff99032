"""The FlowVQ head: a shape-keyed mesh built from the server's face model (``GET /v1/face-model``).

The mapping from model space to Blender space is the one of docs/api.md (``core/face/pose.py``):
a model point ``(x, y, z)`` is the Blender point ``(x, -z, y)`` (`posemath.MODEL_TO_BLENDER`); the
head's rotation mode is ``'XZY'``, in which its delta rotation reads as the pose's own angles.
`face_model_for` fetches and parses a server's face model once (in the worker thread); `build_head`
(main thread) makes the mesh.
"""

import io
from dataclasses import dataclass

import bpy
import numpy as np

from .client import Client
from .posemath import MODEL_TO_BLENDER

__all__ = ["FaceModel", "load_face_model", "face_model_for", "to_blender", "build_head", "FACE_MODEL_PROP",
           "POSE_EULER_ORDER"]

FACE_MODEL_PROP = "flowvq_face_model"
POSE_EULER_ORDER = "XZY"


@dataclass(frozen=True)
class FaceModel:
    """The arrays of a face model ``.npz``: the mesh, the expression basis, the coefficient names
    and ranges, and the named vertex regions (``lips``, ``inner_lips``...).
    Shapes: neutral (V,3), faces (F,3), uv (V,2), basis (D,V,3), each region (N,)."""

    model_id: str
    neutral: np.ndarray
    faces: np.ndarray
    uv: np.ndarray
    basis: np.ndarray
    names: list[str]
    lower: np.ndarray
    upper: np.ndarray
    regions: dict[str, np.ndarray]


def load_face_model(data: bytes) -> FaceModel:
    """Parse the face model ``.npz`` bytes the server sends."""
    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        return FaceModel(
            model_id=f"{npz['name'].item()}@{npz['version'].item()}",
            neutral=npz["neutral"].astype(np.float64),
            faces=npz["faces"].astype(np.int64),
            uv=npz["uv"].astype(np.float64),
            basis=npz["basis"].astype(np.float64),
            names=[str(n) for n in npz["names"]],
            lower=npz["lower"].astype(np.float64),
            upper=npz["upper"].astype(np.float64),
            regions={str(name): npz[f"region_{name}"].astype(np.int64) for name in npz["region_names"]},
        )


# (server URL, model id) -> the parsed model: a face model id names one fixed model (docs/api.md).
_face_models: dict[tuple[str, str], FaceModel] = {}


def face_model_for(client: Client, model_id: str) -> FaceModel:
    """The face model ``model_id`` of ``client``'s server, parsed; ``GET /v1/face-model`` is asked
    only the first time for that server and id. No bpy: it runs in the worker thread."""
    key = (client.conn.url, model_id)
    if key not in _face_models:
        _face_models[key] = load_face_model(client.face_model())
    return _face_models[key]


def to_blender(points: np.ndarray) -> np.ndarray:
    """Model-space points to Blender space: ``(x, y, z) -> (x, -z, y)``. Shapes: (..., 3) -> (..., 3)."""
    return np.asarray(points, dtype=np.float64) @ MODEL_TO_BLENDER.T


def _new_mesh(model: FaceModel, name: str) -> bpy.types.Mesh:
    """The neutral mesh, smooth shaded, with its UV layer (one UV per loop, from the per-vertex UVs)."""
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(to_blender(model.neutral).tolist(), [], model.faces.tolist())
    uv_layer = mesh.uv_layers.new(name="UVMap")
    loop_vertices = np.empty(len(mesh.loops), dtype=np.int64)
    mesh.loops.foreach_get("vertex_index", loop_vertices)
    uv_layer.data.foreach_set("uv", model.uv[loop_vertices].astype(np.float32).ravel())
    mesh.polygons.foreach_set("use_smooth", np.ones(len(mesh.polygons), dtype=bool))
    mesh.update()
    return mesh


def _add_shape_keys(obj: bpy.types.Object, model: FaceModel) -> None:
    """The Basis key, then one key per coefficient name: neutral + that basis delta."""
    obj.shape_key_add(name="Basis", from_mix=False)
    for d, key_name in enumerate(model.names):
        block = obj.shape_key_add(name=key_name, from_mix=False)
        block.data.foreach_set("co", to_blender(model.neutral + model.basis[d]).astype(np.float32).ravel())
        block.slider_min = min(float(model.lower[d]), 0.0)
        block.slider_max = max(float(model.upper[d]), 1.0)


def build_head(model: FaceModel, name: str, collection: bpy.types.Collection) -> bpy.types.Object:
    """A new object in ``collection``: the face mesh with one shape key per coefficient name."""
    obj = bpy.data.objects.new(name, _new_mesh(model, name))
    collection.objects.link(obj)
    _add_shape_keys(obj, model)
    obj.rotation_mode = POSE_EULER_ORDER
    obj[FACE_MODEL_PROP] = model.model_id
    return obj
