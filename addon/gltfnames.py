"""The shape-key names a glTF or VRM file keeps where Blender's glTF importer does not read them.
No bpy, no core.

Blender's importer names a mesh's shape keys from ``meshes[i].extras.targetNames``; where that is
missing it calls them ``target_0``, ``target_1`` ... and the rig's conventions (`mapping`) cannot
recognise any of them. VRM files keep the names elsewhere:

- UniVRM and VRoid Studio write ``targetNames`` on the mesh's first primitive
  (``meshes[i].primitives[0].extras.targetNames``: ``Fcl_MTH_A`` ...);
- some exporters write only indices there (``"0"``, ``"1"`` ...), and the meaning lives in the VRM
  expressions: VRM 0.x ``extensions.VRM.blendShapeMaster.blendShapeGroups`` (each a ``name`` such as
  ``A``, ``Joy``, ``Blink_L`` and ``binds`` of {mesh, index, weight}), VRM 1.0
  ``extensions.VRMC_vrm.expressions`` (``preset``/``custom``: ``aa``, ``happy`` ..., each with
  ``morphTargetBinds`` of {node, index, weight}).

`target_names` reads, for every glTF mesh, one name per morph target: the first primitive's name
when it is a real one (not only digits), else the name of the one expression that binds that
target alone (an expression binding several targets, like VRM 0.x ``Blink`` binding both eyes, names
none of them), else None. `names_for_mesh` picks the glTF mesh a Blender mesh came from: by the
object's or the mesh's name (the importer's ``.001`` suffixes ignored), and always by its number of
shape keys.
"""

import json
import re
import struct
from pathlib import Path
from typing import Any

__all__ = ["GltfNamesError", "MAX_JSON_BYTES", "is_unnamed", "read_document", "target_names", "names_for_mesh"]

MAX_JSON_BYTES = 64 * 1024 * 1024  # a glTF's JSON is kilobytes to a few megabytes; its binary chunk is not read
_GLB_MAGIC = b"glTF"
_JSON_CHUNK = 0x4E4F534A
_UNNAMED = re.compile(r"(target_)?\d+")
_SUFFIX = re.compile(r"\.\d{3}$")


class GltfNamesError(ValueError):
    """A file whose glTF JSON cannot be read, with what is wrong with it."""


def is_unnamed(key: str) -> bool:
    """Whether a shape key's name is only the index Blender's importer or an exporter gave it
    (``target_3``, ``3``)."""
    return _UNNAMED.fullmatch(key) is not None


def read_document(path: str | Path) -> dict[str, Any]:
    """The glTF JSON of a ``.glb``/``.vrm`` (binary glTF) or ``.gltf`` file. Raises `GltfNamesError`
    for a file that is neither, is cut short, or whose JSON is malformed."""
    path = Path(path)
    try:
        with path.open("rb") as stream:
            head = stream.read(20)
            if head[:4] == _GLB_MAGIC:
                if len(head) < 20:
                    raise GltfNamesError(f"{path.name} is cut short: no JSON chunk after its glTF header")
                length, kind = struct.unpack("<II", head[12:20])
                if kind != _JSON_CHUNK:
                    raise GltfNamesError(f"{path.name}: its first chunk is not the glTF JSON")
                if length > MAX_JSON_BYTES:
                    raise GltfNamesError(f"{path.name}: its JSON chunk claims {length} bytes "
                                         f"(at most {MAX_JSON_BYTES})")
                raw = stream.read(length)
                if len(raw) != length:
                    raise GltfNamesError(f"{path.name} is cut short: {len(raw)} of its {length} JSON bytes")
            else:
                raw = head + stream.read(MAX_JSON_BYTES)
                if len(raw) > MAX_JSON_BYTES:
                    raise GltfNamesError(f"{path.name} is over {MAX_JSON_BYTES} bytes: too large for a .gltf's JSON")
    except OSError as exc:
        raise GltfNamesError(f"cannot read {path}: {exc.strerror or exc}") from exc
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise GltfNamesError(f"{path.name} is not a glTF or VRM file (no glTF JSON: {exc})") from exc
    if not isinstance(document, dict) or not isinstance(document.get("meshes", []), list):
        raise GltfNamesError(f"{path.name} is not a glTF or VRM file (its JSON has no mesh list)")
    return document


def _list(value: Any) -> list:
    """``value`` when it is a list, else an empty one (malformed parts of a file are skipped)."""
    return value if isinstance(value, list) else []


def _dict(value: Any) -> dict:
    """``value`` when it is a dict, else an empty one."""
    return value if isinstance(value, dict) else {}


def _expression_binds(document: dict[str, Any]) -> list[tuple[str, list[tuple[int, int]]]]:
    """(name, [(mesh index, target index)]) of every VRM 0.x blend-shape group and VRM 1.0
    expression (1.0 binds name nodes; their meshes are looked up)."""
    extensions = _dict(document.get("extensions"))
    found: list[tuple[str, list[tuple[int, int]]]] = []
    groups = _list(_dict(_dict(extensions.get("VRM")).get("blendShapeMaster")).get("blendShapeGroups"))
    for group in map(_dict, groups):
        name = str(group.get("name") or group.get("presetName") or "")
        binds = [(b.get("mesh"), b.get("index")) for b in map(_dict, _list(group.get("binds")))]
        found.append((name, [(m, i) for m, i in binds if isinstance(m, int) and isinstance(i, int)]))
    nodes = _list(document.get("nodes"))
    expressions = _dict(_dict(extensions.get("VRMC_vrm")).get("expressions"))
    for table in (_dict(expressions.get("preset")), _dict(expressions.get("custom"))):
        for name, expression in table.items():
            binds = []
            for bind in map(_dict, _list(_dict(expression).get("morphTargetBinds"))):
                node, index = bind.get("node"), bind.get("index")
                if isinstance(node, int) and 0 <= node < len(nodes) and isinstance(index, int):
                    mesh = _dict(nodes[node]).get("mesh")
                    if isinstance(mesh, int):
                        binds.append((mesh, index))
            found.append((str(name), binds))
    return found


def target_names(document: dict[str, Any]) -> list[list[str | None]]:
    """For every glTF mesh (by index), one name per morph target of its first primitive, None where
    the file has none (module docstring)."""
    meshes = [_dict(mesh) for mesh in _list(document.get("meshes"))]
    names: list[list[str | None]] = []
    for mesh in meshes:
        primitive = _dict((_list(mesh.get("primitives")) or [{}])[0])
        count = len(_list(primitive.get("targets")))
        given = [str(name) for name in _list(_dict(primitive.get("extras")).get("targetNames"))
                 or _list(_dict(mesh.get("extras")).get("targetNames"))]
        names.append([given[i] if i < len(given) and not is_unnamed(given[i]) else None for i in range(count)])
    for name, binds in _expression_binds(document):
        if len(binds) != 1 or not name:
            continue
        mesh, index = binds[0]
        if 0 <= mesh < len(names) and 0 <= index < len(names[mesh]) and names[mesh][index] is None:
            names[mesh][index] = name
    return names


def _labels(document: dict[str, Any], mesh: int) -> set[str]:
    """The names Blender may give glTF mesh ``mesh``'s object or mesh data: the mesh's own name and
    the names of the nodes that use it."""
    labels = {str(_dict(_list(document.get("meshes"))[mesh]).get("name") or "")}
    nodes = map(_dict, _list(document.get("nodes")))
    labels |= {str(node.get("name") or "") for node in nodes if node.get("mesh") == mesh}
    return labels - {""}


def names_for_mesh(
    document: dict[str, Any], object_name: str, mesh_name: str, key_count: int
) -> list[str | None] | None:
    """The target names (`target_names`) of the glTF mesh a Blender mesh with ``key_count`` shape
    keys besides its Basis came from: the one with that many targets whose node or mesh name is
    ``object_name`` or ``mesh_name`` (``.001`` suffixes ignored), else the only one with that many
    targets; None when no glTF mesh, or several equally, fit."""
    every = target_names(document)
    fitting = [i for i, names in enumerate(every) if len(names) == key_count and key_count > 0]
    wanted = {_SUFFIX.sub("", object_name), _SUFFIX.sub("", mesh_name)}
    named = [i for i in fitting if _labels(document, i) & wanted]
    chosen = named if named else fitting
    return every[chosen[0]] if len(chosen) == 1 else None
