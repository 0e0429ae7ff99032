"""`addon/gltfnames.py` without Blender: shape-key names read back from glTF and VRM files written
here byte by byte as their exporters lay them out."""

import json
import struct

import pytest

from .pure import pure_module

gltfnames = pure_module("gltfnames")


def write_glb(path, document: dict, binary: bytes = b"\0\0\0\0") -> None:
    """A binary glTF (.glb/.vrm): header, the JSON chunk padded with spaces, one BIN chunk."""
    text = json.dumps(document).encode()
    text += b" " * (-len(text) % 4)
    chunks = struct.pack("<II", len(text), 0x4E4F534A) + text + struct.pack("<II", len(binary), 0x004E4942) + binary
    path.write_bytes(b"glTF" + struct.pack("<II", 2, 12 + len(chunks)) + chunks)


def mesh(name: str, targets: int, names: list[str] | None = None, on_mesh: bool = False) -> dict:
    """A glTF mesh whose first primitive has ``targets`` morph targets, their names (if any) in the
    primitive's extras (UniVRM, VRoid) or the mesh's (``on_mesh``: what Blender reads)."""
    primitive = {"attributes": {"POSITION": 0}, "targets": [{"POSITION": 0}] * targets}
    entry = {"name": name, "primitives": [primitive]}
    if names is not None:
        (entry if on_mesh else primitive)["extras"] = {"targetNames": names}
    return entry


def vrm0(meshes: list[dict], groups: list[tuple[str, str, list[tuple[int, int]]]]) -> dict:
    """A VRM 0.x document: nodes named after the meshes, blend-shape groups (name, preset, binds)."""
    nodes = [{"name": m["name"].lower(), "mesh": i} for i, m in enumerate(meshes)]
    entries = [{"name": name, "presetName": preset, "binds": [{"mesh": m, "index": i, "weight": 100} for m, i in binds]}
               for name, preset, binds in groups]
    return {"asset": {"version": "2.0"}, "meshes": meshes, "nodes": nodes,
            "extensions": {"VRM": {"blendShapeMaster": {"blendShapeGroups": entries}}}}


VOWEL_GROUPS = [("A", "a", [(0, 0)]), ("I", "i", [(0, 1)]), ("U", "u", [(0, 2)]), ("E", "e", [(0, 3)]),
                ("O", "o", [(0, 4)]), ("Blink_L", "blink_l", [(0, 5)]), ("Blink_R", "blink_r", [(0, 6)]),
                ("Blink", "blink", [(0, 5), (0, 6)]), ("Joy", "joy", [(0, 7)])]


def test_index_only_target_names_take_the_vrm0_expression_that_binds_each_alone(tmp_path):
    """An exporter that writes "0", "1", ... as target names (a Polygonal Mind VRM): the names are
    the blend-shape groups'; Blink binds both eyes, so the eyes take Blink_L and Blink_R, and a
    target no group binds alone stays unnamed."""
    document = vrm0([mesh("Mesh.092", 9, [str(i) for i in range(9)]), mesh("Mesh.110", 0)], VOWEL_GROUPS[:-1])
    write_glb(tmp_path / "hero.vrm", document)
    read = gltfnames.read_document(tmp_path / "hero.vrm")
    assert gltfnames.target_names(read) == [["A", "I", "U", "E", "O", "Blink_L", "Blink_R", None, None], []]
    assert gltfnames.names_for_mesh(read, "body", "Mesh.092", 9)[:2] == ["A", "I"]


def test_univrm_primitive_target_names_are_read_and_win_over_the_expressions(tmp_path):
    vroid = ["Fcl_MTH_A", "Fcl_MTH_I", "Fcl_MTH_U", "Fcl_MTH_E", "Fcl_MTH_O", "Fcl_EYE_Close_L",
             "Fcl_EYE_Close_R", "Fcl_ALL_Joy"]
    write_glb(tmp_path / "vroid.vrm", vrm0([mesh("Face", 8, vroid)], VOWEL_GROUPS))
    assert gltfnames.target_names(gltfnames.read_document(tmp_path / "vroid.vrm")) == [vroid]


def test_vrm1_expressions_name_targets_through_their_nodes(tmp_path):
    document = {"asset": {"version": "2.0"}, "meshes": [mesh("Body", 1), mesh("Face", 3)],
                "nodes": [{"name": "body", "mesh": 0}, {"name": "face", "mesh": 1}],
                "extensions": {"VRMC_vrm": {"expressions": {
                    "preset": {"aa": {"morphTargetBinds": [{"node": 1, "index": 0, "weight": 1.0}]},
                               "happy": {"morphTargetBinds": [{"node": 1, "index": 2, "weight": 1.0}]}},
                    "custom": {"Tongue": {"morphTargetBinds": [{"node": 0, "index": 0, "weight": 1.0}]}}}}}}
    (tmp_path / "avatar.gltf").write_text(json.dumps(document))
    read = gltfnames.read_document(tmp_path / "avatar.gltf")
    assert gltfnames.target_names(read) == [["Tongue"], ["aa", None, "happy"]]


def test_the_blender_mesh_is_found_by_name_and_count_and_never_guessed(tmp_path):
    meshes = [mesh("Head", 3, ["a", "b", "c"]), mesh("Teeth", 3, ["x", "y", "z"]), mesh("Eyes", 2, ["l", "r"])]
    document = vrm0(meshes, [])
    assert gltfnames.names_for_mesh(document, "teeth.001", "Mesh", 3) == ["x", "y", "z"]  # node name, suffix dropped
    assert gltfnames.names_for_mesh(document, "Object", "Head.002", 3) == ["a", "b", "c"]  # mesh name
    assert gltfnames.names_for_mesh(document, "Object", "Mesh", 2) == ["l", "r"]  # the only mesh with 2 targets
    assert gltfnames.names_for_mesh(document, "Object", "Mesh", 3) is None  # two meshes with 3: no guess
    assert gltfnames.names_for_mesh(document, "head", "Head", 5) is None  # the name fits, the count does not


@pytest.mark.parametrize("key, unnamed", [("target_0", True), ("target_12", True), ("7", True), ("A", False),
                                          ("Fcl_MTH_A", False), ("target_A", False), ("jawOpen", False)])
def test_unnamed_keys_are_the_importers_and_exporters_indices(key, unnamed):
    assert gltfnames.is_unnamed(key) is unnamed


@pytest.mark.parametrize("content, message", [
    (b"", "not a glTF or VRM file"),
    (b"glTF\x02\x00\x00\x00", "cut short"),
    (b"glTF" + struct.pack("<IIII", 2, 100, 80, 0x4E4F534A) + b"{}", "cut short: 2 of its 80 JSON bytes"),
    (b"glTF" + struct.pack("<IIII", 2, 100, 4, 0x004E4942) + b"abcd", "first chunk is not the glTF JSON"),
    (b"\x89PNG\r\n\x1a\n" + bytes(40), "not a glTF or VRM file"),
    (b'{"meshes": 3}', "no mesh list"),
    (b"[1, 2]", "no mesh list"),
])
def test_a_file_that_is_not_gltf_is_refused_with_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "character.vrm"
    path.write_bytes(content)
    with pytest.raises(gltfnames.GltfNamesError, match=message):
        gltfnames.read_document(path)
    with pytest.raises(gltfnames.GltfNamesError, match="cannot read"):
        gltfnames.read_document(tmp_path / "missing.vrm")
