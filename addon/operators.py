"""Operators: the panel's buttons. Generate and Re-render read the scene into a background job
(`runner`); the other buttons act at once. What a finished job does to the scene is `apply`'s."""

import json
import time
import uuid
from functools import partial
from pathlib import Path
from typing import Callable, TypeVar

import bpy
from bpy.props import IntProperty, StringProperty
from bpy_extras.io_utils import ExportHelper, ImportHelper

from . import apply, character, gltfnames, jobs, keys, mapping as mapping_module, preview, runner, takes
from . import scene as scene_utils
from .client import Client, ServerError
from .face import face_model_for
from .prefs import connection, preferences
from .props import NO_BLEND, set_emotions
from .server_process import LocalServer

__all__ = ["local_server", "snapshot", "settings_dict", "SERVER_SETTINGS", "mapping_of", "fill_character",
           "name_keys_from_file", "target_of", "classes"]

local_server = LocalServer()
T = TypeVar("T")

# Job setting (docs/api.md, `GET /v1/info` settings) -> the panel property that holds it.
SERVER_SETTINGS = {"intensity": "intensity", "temperature": "temperature", "pose_temperature": "pose_temperature",
                   "style_temperature": "style_temperature", "seed": "seed", "takes": "takes", "pose": "use_pose",
                   "pose_amount": "pose_amount", "blinks": "blinks", "gaze": "gaze", "render": "render_preview",
                   "render_size": "render_size", "blend_weight": "blend_weight", "closures": "closures"}


def scene_fps(scene: bpy.types.Scene) -> float:
    """Frames per second of the scene."""
    return scene.render.fps / scene.render.fps_base


def render_size_of(props) -> int:
    """The preview frame size the panel asks for, rounded down to a multiple of 8 (docs/api.md)."""
    return props.render_size // 8 * 8


def portrait_of(props) -> Path | None:
    """The panel's source portrait, None when unset; raises ValueError when it is not a file."""
    if not props.portrait_path:
        return None
    portrait = Path(bpy.path.abspath(props.portrait_path))
    if not portrait.is_file():
        raise ValueError(f"the portrait '{props.portrait_path}' is not a file")
    return portrait


def new_frames_dir(kind: str) -> Path:
    """A fresh, not yet created, folder for one job's preview frames under `preview.frames_root`
    (the job creates it when the frames arrive)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return preview.frames_root(bpy.data.filepath) / f"{stamp}-{kind}-{uuid.uuid4().hex[:8]}"


def _audio_and_start(scene: bpy.types.Scene, props) -> tuple[Path, bool, int]:
    """(clip, whether to add a sound strip, first frame) from the panel's audio choice."""
    if props.audio_source == "STRIP":
        strip = next((s for s in scene_utils.sound_strips(scene) if s.name == props.audio_strip), None)
        if strip is None:
            raise ValueError("choose a sound strip of the sequencer")
        return Path(bpy.path.abspath(strip.sound.filepath)), False, int(strip.frame_start)
    audio = Path(bpy.path.abspath(props.audio_path))
    if not props.audio_path or not audio.is_file():
        raise ValueError(f"the speech clip '{props.audio_path}' is not a file")
    return audio, True, scene.frame_start


def check_upload(audio: Path, limits: dict) -> None:
    """Refuse, before uploading, a clip larger than the server's published ``max_upload_bytes``
    (known once Check Server has reached it); raises ValueError with a message for the user."""
    limit = limits.get("max_upload_bytes")
    size = audio.stat().st_size
    if limit is not None and size > limit:
        raise ValueError(f"the speech clip is {size / 2**20:.1f} MB, over the server's upload limit of "
                         f"{limit / 2**20:.0f} MB: trim it, or save it as mono 16 kHz FLAC")


def mapping_of(props) -> mapping_module.Mapping:
    """The panel's mapping (its rows as edited); raises ValueError naming a row it cannot read."""
    return mapping_module.from_rows([(item.name, item.terms) for item in props.mapping], props.preset)


def target_of(context: bpy.types.Context):
    """The character's head mesh: the panel's target, or the active object when the panel has
    none (`character.follow_selection`)."""
    props = context.scene.flowvq
    character.follow_selection(props, context.view_layer.objects.active)
    return props.target


def settings_dict(props, fps: float) -> dict:
    """The job settings (docs/api.md) from the panel."""
    settings = {name: getattr(props, prop) for name, prop in SERVER_SETTINGS.items()}
    settings.update(emotion=props.emotion, fps=fps, render_size=render_size_of(props))
    if props.blend != NO_BLEND:
        settings["blend"] = props.blend
    if props.dialogue.strip():
        settings["text"] = props.dialogue.strip()
    if props.use_reference:
        if not props.reference:
            raise ValueError("press 'Reference From Current Pose' first, or turn the reference off")
        settings["reference"] = [item.value for item in props.reference]
    return settings


def _driven_parts(props, target: bpy.types.Object) -> tuple[str, ...]:
    """The names of the character's meshes to drive, the head mesh first; raises ValueError when
    the panel's list is not this character's."""
    parts = [part.obj.name for part in props.parts if part.obj is not None and part.enabled]
    if not parts or parts[0] != target.name:
        raise ValueError(f"press 'Find Character' for '{target.name}' first")
    return tuple(parts)


def snapshot(context: bpy.types.Context) -> tuple[apply.Snapshot, jobs.GenerateRequest]:
    """Read and check everything Generate needs; raises ValueError with a message for the user."""
    scene, props = context.scene, context.scene.flowvq
    audio, add_strip, frame_start = _audio_and_start(scene, props)
    check_upload(audio, json.loads(props.server_limits or "{}"))
    create = props.target_mode == "CREATE"
    parts, mapping = (), None
    if not create:
        target = target_of(context)
        if target is None or target.data.shape_keys is None:
            raise ValueError("choose the character's head mesh (a mesh with shape keys), or create the FlowVQ head")
        parts, mapping = _driven_parts(props, target), mapping_of(props)
        if not mapping.keys and not mapping.visemes:
            raise ValueError("no shape key of the character is driven: press 'Find Character' or edit the mapping")
        if props.use_pose:
            character.pose_owner(target, props.head_bone)  # refused now rather than after the job
    portrait = portrait_of(props)
    fps = scene_fps(scene)
    snap = apply.Snapshot(audio=audio, add_audio_strip=add_strip, frame_start=frame_start, fps=fps,
                          create_head=create, parts=parts, mapping=mapping, tolerance=props.tolerance,
                          with_pose=props.use_pose, translate=props.pose_translation, head_bone=props.head_bone,
                          eye_bones=props.eye_bones, eye_turn=props.eye_turn)
    needs_model = create or bool(mapping.visemes)
    request = jobs.GenerateRequest(audio=audio, settings=settings_dict(props, fps), portrait=portrait,
                                   frames_dir=new_frames_dir("generate") if props.render_preview else None,
                                   face_model=face_model_for if needs_model else None)
    return snap, request


class JobOperator:
    """The part Generate and Re-render share: `job` reads the scene and returns the background job
    (a ValueError is a message for the user, and nothing starts); `execute` starts it. One job runs
    at a time."""

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return runner.active.task is None

    def job(self, context: bpy.types.Context) -> runner.Job:
        raise NotImplementedError

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            job = self.job(context)
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        runner.start_task(context, job)
        return {"FINISHED"}


class FLOWVQ_OT_generate(JobOperator, bpy.types.Operator):
    """Generate takes from the speech clip on the server (in the background)"""

    bl_idname = "flowvq.generate"
    bl_label = "Generate"

    def job(self, context: bpy.types.Context) -> runner.Job:
        snap, request = snapshot(context)
        return runner.Job(partial(jobs.generate, request),
                          lambda scene, result: apply.apply_generate(scene, snap, result), request.frames_dir)


def _take_as_drawn(item) -> dict:
    """The take (wire format) that the active take's curves describe now, hand edits included."""
    key_action = next((b.action for b in item.bindings if b.what == "KEYS" and b.obj == item.target), None)
    owner, pose_action = apply.take_owner(item)
    meta = json.loads(item.meta)
    return takes.sample_take(item.target, key_action, owner, pose_action, meta["names"], json.loads(item.direct),
                             item.frame_start, item.frame_count, item.fps, meta, apply.take_eyes(item))


class FLOWVQ_OT_rerender(JobOperator, bpy.types.Operator):
    """Render preview frames from the active take's curves as they are now (hand edits included)"""

    bl_idname = "flowvq.rerender"
    bl_label = "Re-render From Curves"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return super().poll(context) and len(context.scene.flowvq.take_items) > 0

    def job(self, context: bpy.types.Context) -> runner.Job:
        props = context.scene.flowvq
        if apply.prune_takes(props) and not props.take_items:
            raise ValueError("the takes' Actions were deleted: generate again")
        index = props.active_take
        request = jobs.RenderRequest(_take_as_drawn(props.take_items[index]), {"render_size": render_size_of(props)},
                                     portrait_of(props), new_frames_dir("render"))
        return runner.Job(partial(jobs.render, request),
                          lambda scene, frames_dir: apply.apply_render(scene, index, frames_dir), request.frames_dir)


class FLOWVQ_OT_cancel(bpy.types.Operator):
    """Cancel the running job"""

    bl_idname = "flowvq.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return runner.active.task is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        runner.active.task.cancel()
        return {"FINISHED"}


def ask_server(context: bpy.types.Context, question: Callable[[Client], T]) -> T:
    """``question(client)`` asked right away (main thread: only quick requests) of the preferences'
    server; raises `ServerError` with a message for the user."""
    client = Client(connection(context))
    try:
        return question(client)
    finally:
        client.close()


def remember_info(props, info: dict) -> None:
    """Take the server's facts: its emotions for the menu, its coefficient names for mappings."""
    set_emotions(info["emotions"])
    props.model_names = json.dumps(info["names"])
    props.server_limits = json.dumps(info.get("limits", {}))


class FLOWVQ_OT_check_server(bpy.types.Operator):
    """Ask the server whether it is ready, and which emotions it offers"""

    bl_idname = "flowvq.check_server"
    bl_label = "Check Server"

    def execute(self, context: bpy.types.Context) -> set[str]:
        props = context.scene.flowvq
        try:
            health, info = ask_server(context, lambda client: (client.health(), client.info()))
        except ServerError as exc:
            props.server_status = str(exc)
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        remember_info(props, info)
        props.server_status = f"{health['status']} ({health.get('device', '?')}, {health.get('face_model', '?')})"
        return {"FINISHED"}


class FLOWVQ_OT_start_server(bpy.types.Operator):
    """Start the local server with the command set in the preferences"""

    bl_idname = "flowvq.start_server"
    bl_label = "Start Server"

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            local_server.start(preferences(context).server_command)
        except (OSError, ValueError) as exc:
            self.report({"ERROR"}, f"cannot start the server: {exc}")
            return {"CANCELLED"}
        return {"FINISHED"}


class FLOWVQ_OT_stop_server(bpy.types.Operator):
    """Stop the local server this Blender started"""

    bl_idname = "flowvq.stop_server"
    bl_label = "Stop Server"

    def execute(self, context: bpy.types.Context) -> set[str]:
        local_server.stop()
        return {"FINISHED"}


def _key_names(obj: bpy.types.Object) -> list[str]:
    """``obj``'s shape-key names, the reference (Basis) key left out."""
    shape_keys = obj.data.shape_keys
    return [block.name for block in shape_keys.key_blocks if block != shape_keys.reference_key]


def fill_character(props, names: list[str], target: bpy.types.Object) -> None:
    """List ``target``'s character in the panel and map its shape keys: the meshes any mapped key
    of which they have (the head first, switches kept for meshes listed before), and one mapping
    row per shape key of the character, from the panel's convention (Auto: the best match)."""
    meshes = character.character_meshes(target)
    all_keys = list(dict.fromkeys(key for mesh in meshes for key in _key_names(mesh)))
    found = mapping_module.build_character_mapping([_key_names(mesh) for mesh in meshes], names,
                                                   None if props.preset in ("AUTO", "CUSTOM") else props.preset)
    driven = set(mapping_module.driven_keys(found))
    switches = {part.obj.name: part.enabled for part in props.parts if part.obj is not None}
    props.parts.clear()
    for mesh in meshes:
        count = len(driven & set(_key_names(mesh)))
        if mesh == target or count:
            part = props.parts.add()
            part.name, part.obj, part.driven = mesh.name, mesh, count
            part.enabled = switches.get(mesh.name, True) or mesh == target
    props.mapping.clear()
    for key in all_keys:
        row = props.mapping.add()
        row.name, row.terms = key, mapping_module.format_terms(found, key)
    props.unmatched = ", ".join(k for k in all_keys if k not in driven)
    props.model_names = json.dumps(names)
    if not driven:
        props.status = _nothing_driven(all_keys)
    elif props.preset == "AUTO":
        props.status = f"mapped as {found.preset}"


def _nothing_driven(keys: list[str]) -> str:
    """Why no shape key of the character is driven, and what to do."""
    unnamed = [key for key in keys if gltfnames.is_unnamed(key)]
    if unnamed and len(unnamed) == len(keys):
        return (f"the character's {len(keys)} shape keys have no names ({unnamed[0]}, ...): Blender's glTF "
                f"importer did not find them; press Name Keys From File and pick the .vrm, .glb or .gltf")
    return (f"none of the character's {len(keys)} shape keys matches a rig convention: pick one under "
            f"Convention, or write each key's drive in the mapping rows")


def _head_mesh(operator: bpy.types.Operator, context: bpy.types.Context) -> bpy.types.Object | None:
    """The character's head mesh (`target_of`), or None after telling the artist to choose one."""
    target = target_of(context)
    if target is None or target.data.shape_keys is None:
        operator.report({"ERROR"}, "choose the character's head mesh (a mesh with shape keys) first")
        return None
    return target


class FLOWVQ_OT_find_character(bpy.types.Operator):
    """Find the meshes of the target's character and map their shape keys to the face model's names"""

    bl_idname = "flowvq.find_character"
    bl_label = "Find Character"

    def execute(self, context: bpy.types.Context) -> set[str]:
        props = context.scene.flowvq
        target = _head_mesh(self, context)
        if target is None:
            return {"CANCELLED"}
        try:
            names = ask_server(context, lambda client: client.info()["names"])
        except ServerError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        fill_character(props, names, target)
        if not any(part.driven for part in props.parts):
            self.report({"WARNING"}, props.status)
        return {"FINISHED"}


def name_keys_from_file(meshes: list[bpy.types.Object], document: dict) -> dict[str, int]:
    """Name the unnamed shape keys (`gltfnames.is_unnamed`) of ``meshes`` from the glTF/VRM
    ``document`` they were imported from (`gltfnames.names_for_mesh`): mesh name -> keys named. A
    key the file has no name for, or whose name the mesh already uses, keeps its own."""
    named: dict[str, int] = {}
    for mesh in meshes:
        blocks = [b for b in mesh.data.shape_keys.key_blocks if b != mesh.data.shape_keys.reference_key]
        if not any(gltfnames.is_unnamed(b.name) for b in blocks):
            continue
        names = gltfnames.names_for_mesh(document, mesh.name, mesh.data.name, len(blocks))
        if names is None:
            continue
        taken = {b.name for b in blocks}
        for block, name in zip(blocks, names):
            if name is not None and gltfnames.is_unnamed(block.name) and name not in taken:
                taken.discard(block.name)
                block.name = name
                taken.add(name)
                named[mesh.name] = named.get(mesh.name, 0) + 1
    return named


class FLOWVQ_OT_name_keys(bpy.types.Operator, ImportHelper):
    """Name the character's unnamed shape keys (target_0, ...) from the .vrm, .glb or .gltf it was imported from"""

    bl_idname = "flowvq.name_keys"
    bl_label = "Name Keys From File"
    bl_options = {"REGISTER", "UNDO"}
    filter_glob: StringProperty(default="*.vrm;*.glb;*.gltf", options={"HIDDEN"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            document = gltfnames.read_document(self.filepath)
        except gltfnames.GltfNamesError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        target = _head_mesh(self, context)
        if target is None:
            return {"CANCELLED"}
        props = context.scene.flowvq
        meshes = character.character_meshes(target)
        if not any(gltfnames.is_unnamed(key) for mesh in meshes for key in _key_names(mesh)):
            self.report({"ERROR"}, "the character has no unnamed shape keys (target_0, ...): nothing to name")
            return {"CANCELLED"}
        named = name_keys_from_file(meshes, document)
        if not named:
            self.report({"ERROR"}, f"{Path(self.filepath).name} names none of the character's unnamed shape keys: "
                                   f"no mesh in it has the same name and number of morph targets")
            return {"CANCELLED"}
        done = ", ".join(f"{count} on {mesh}" for mesh, count in named.items())
        if props.model_names:
            fill_character(props, json.loads(props.model_names), target)
        props.status = f"named {done} from {Path(self.filepath).name}" + (
            f"; {props.status}" if props.model_names else "; press Find Character")
        return {"FINISHED"}


class FLOWVQ_OT_save_mapping(bpy.types.Operator, ExportHelper):
    """Save the mapping as a JSON preset"""

    bl_idname = "flowvq.save_mapping"
    bl_label = "Save Mapping"
    filename_ext = ".json"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            mapping_module.save_preset(mapping_of(context.scene.flowvq), Path(self.filepath))
        except (OSError, ValueError) as exc:
            self.report({"ERROR"}, f"cannot save the mapping: {exc}")
            return {"CANCELLED"}
        return {"FINISHED"}


class FLOWVQ_OT_load_mapping(bpy.types.Operator, ImportHelper):
    """Load a JSON mapping preset onto the character's shape keys"""

    bl_idname = "flowvq.load_mapping"
    bl_label = "Load Mapping"
    filter_glob: StringProperty(default="*.json", options={"HIDDEN"})

    def execute(self, context: bpy.types.Context) -> set[str]:
        props = context.scene.flowvq
        try:
            loaded = mapping_module.load_preset(Path(self.filepath))
        except (OSError, ValueError) as exc:
            self.report({"ERROR"}, f"cannot load the mapping: {exc}")
            return {"CANCELLED"}
        props.preset = "CUSTOM"
        props.mapping.clear()
        for key in mapping_module.driven_keys(loaded):
            row = props.mapping.add()
            row.name, row.terms = key, mapping_module.format_terms(loaded, key)
        return {"FINISHED"}


class FLOWVQ_OT_reference_from_pose(bpy.types.Operator):
    """Use the head's shape-key values at the current frame as the reference coefficients"""

    bl_idname = "flowvq.reference_from_pose"
    bl_label = "Reference From Current Pose"

    def execute(self, context: bpy.types.Context) -> set[str]:
        props = context.scene.flowvq
        create = props.target_mode == "CREATE"
        head = props.head if create else target_of(context)
        if head is None or head.data.shape_keys is None:
            self.report({"ERROR"}, "there is no head with shape keys yet")
            return {"CANCELLED"}
        if create:
            names = _key_names(head)
            direct = {name: name for name in names}
        else:
            try:
                names, direct = json.loads(props.model_names), mapping_module.direct_keys(mapping_of(props))
            except ValueError as exc:
                self.report({"ERROR"}, f"press 'Find Character' first ({exc})")
                return {"CANCELLED"}
        props.reference.clear()
        for name, value in zip(names, takes.reference_values(head, names, direct)):
            item = props.reference.add()
            item.name, item.value = name, value
        props.use_reference = True
        return {"FINISHED"}


class FLOWVQ_OT_switch_take(bpy.types.Operator):
    """Make this take drive the character (the Actions it replaces are kept)"""

    bl_idname = "flowvq.switch_take"
    bl_label = "Use Take"

    index: IntProperty()

    def invoke(self, context: bpy.types.Context, event) -> set[str]:
        item = context.scene.flowvq.take_items[self.index]
        own = {binding.action for binding in item.bindings}
        replaced = [keys.assigned_action(apply.binding_owner(b)) for b in item.bindings
                    if b.obj is not None and not apply.plays_own_animation(b)]
        if any(action is not None and action not in own and takes.is_edited(action) for action in replaced):
            return context.window_manager.invoke_confirm(self, event)
        return self.execute(context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        props = context.scene.flowvq
        name = props.take_items[self.index].name
        apply.prune_takes(props)
        index = props.take_items.find(name)
        if index < 0:
            self.report({"ERROR"}, f"the Actions of take '{name}' were deleted; it was removed from the list")
            return {"CANCELLED"}
        apply.switch_take(context.scene, index)
        return {"FINISHED"}


class FLOWVQ_OT_takes_to_nla(bpy.types.Operator):
    """Put every take on its own NLA track (muted but the active one) to compare them"""

    bl_idname = "flowvq.takes_to_nla"
    bl_label = "Takes to NLA"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return len(context.scene.flowvq.take_items) > 0

    def execute(self, context: bpy.types.Context) -> set[str]:
        apply.takes_to_nla(context.scene)
        return {"FINISHED"}


classes = (FLOWVQ_OT_generate, FLOWVQ_OT_takes_to_nla, FLOWVQ_OT_rerender, FLOWVQ_OT_cancel, FLOWVQ_OT_check_server,
           FLOWVQ_OT_start_server, FLOWVQ_OT_stop_server, FLOWVQ_OT_find_character, FLOWVQ_OT_name_keys,
           FLOWVQ_OT_save_mapping, FLOWVQ_OT_load_mapping, FLOWVQ_OT_reference_from_pose, FLOWVQ_OT_switch_take)
