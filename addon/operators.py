"""Operators. Generate and Re-render start a `jobs.Task`; only `poll_task`, the timer callback,
touches bpy while it runs, and it applies the result to the scene when the task ends."""

import json
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable, TypeVar

import bpy
from bpy.props import IntProperty

from . import jobs, keys, preview, scene as scene_utils, takes
from .client import Client, ServerError
from .face import FaceModel, build_head, face_model_for
from .props import set_emotions
from .prefs import connection, preferences
from .retarget import match_names
from .server_process import LocalServer

__all__ = ["Job", "ActiveTask", "active", "local_server", "poll_task", "start_task", "Snapshot", "snapshot",
           "settings_dict", "mapping_of", "names_and_mapping", "fill_mapping", "apply_generate", "apply_render",
           "switch_take", "takes_to_nla", "classes", "TIMER_INTERVAL_S"]

TIMER_INTERVAL_S = 0.1
HEAD_NAME = "FlowVQ Head"
T = TypeVar("T")


@dataclass(frozen=True)
class Job:
    """A background job as an operator prepared it: ``work(client, report, cancelled)`` runs in the
    worker thread, ``apply(scene, result)`` on the main thread when it succeeds (returning the
    status line, or raising ValueError when the scene no longer allows it), and ``frames_dir`` is
    the folder the job downloads preview frames to, removed unless the job's result is applied."""

    work: Callable[[Client, jobs.Report, threading.Event], Any]
    apply: Callable[[bpy.types.Scene, Any], str]
    frames_dir: Path | None = None


@dataclass
class ActiveTask:
    """The one running task and the scene and job it belongs to."""

    task: jobs.Task | None = None
    scene_name: str = ""
    job: Job | None = None


active = ActiveTask()
local_server = LocalServer()


def settings_of(context: bpy.types.Context):
    """The scene's `FlowVQSettings`."""
    return context.scene.flowvq


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


def discard_frames(frames_dir: Path | None) -> None:
    """Remove a job's frames folder (whatever it holds: it belongs to that job alone)."""
    if frames_dir is not None:
        shutil.rmtree(frames_dir, ignore_errors=True)


def _tag_redraw() -> None:
    """Redraw the sidebars of the 3D Views (where the panel is; the viewports themselves are left
    alone, so a heavy scene is not redrawn ten times a second) and the status bar. The status bar
    is a global area, outside ``screen.areas``; it redraws on the message bus's view-layer-name
    notices, so one is published (nothing changes)."""
    for window in bpy.context.window_manager.windows:
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                for region in area.regions:
                    if region.type == "UI":
                        region.tag_redraw()
    bpy.msgbus.publish_rna(key=(bpy.types.ViewLayer, "name"))


def poll_task() -> float | None:
    """The timer callback: drain the task's progress, apply its result when it ends.

    Returns the delay until the next call, or None (stop) once the task has ended.
    """
    if active.task is None:
        return None
    scene = bpy.data.scenes.get(active.scene_name)
    state, job = active.task.poll(), active.job
    if state.done:
        active.task = active.job = None
    if scene is not None:
        props = scene.flowvq
        props.progress, props.status = state.fraction, state.message
        if state.done:
            props.running = False
            props.status = _finish(scene, state, job)
    elif state.done:
        discard_frames(job.frames_dir)
    _tag_redraw()
    return None if state.done else TIMER_INTERVAL_S


def _finish(scene: bpy.types.Scene, state: jobs.TaskState, job: Job) -> str:
    """The status line for an ended task. Its result is applied when it succeeded; otherwise
    (failed, cancelled, or the scene no longer allows it) the scene is left as it was and the job's
    frames folder is removed."""
    if state.cancelled:
        status = "cancelled; nothing was changed"
    elif state.error is not None:
        status = f"failed: {state.error}; nothing was changed"
    else:
        try:
            return job.apply(scene, state.result)
        except ValueError as exc:
            status = f"failed: {exc}; nothing was changed"
    discard_frames(job.frames_dir)
    return status


def start_task(context: bpy.types.Context, job: Job) -> None:
    """Run ``job.work`` in a worker thread with a client of the preferences' server (closed after
    it) and poll it from a timer."""
    props = settings_of(context)
    client = Client(connection(context))
    active.task = jobs.Task(partial(job.work, client), on_end=client.close).start()
    active.scene_name, active.job = context.scene.name, job
    props.running, props.progress, props.status = True, 0.0, "starting"
    if not bpy.app.timers.is_registered(poll_task):
        bpy.app.timers.register(poll_task, first_interval=TIMER_INTERVAL_S)


@dataclass(frozen=True)
class Snapshot:
    """What Generate read from the scene when pressed; applied unchanged when the job ends."""

    audio: Path
    add_audio_strip: bool
    frame_start: int
    fps: float
    create_head: bool
    target_name: str
    mapping: dict
    tolerance: float
    with_pose: bool


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


def mapping_of(props) -> dict[str, str]:
    """The panel's mapping: model name -> target shape key (empty keys left out)."""
    return {item.name: item.key for item in props.mapping if item.key}


def names_and_mapping(props, target: bpy.types.Object) -> tuple[list[str], dict[str, str]]:
    """(model names, model name -> shape key) for ``target``: the FlowVQ head's keys are the model
    names; another mesh uses the panel's mapping."""
    if target == props.head:
        names = [block.name for block in target.data.shape_keys.key_blocks[1:]]
        return names, {name: name for name in names}
    return [item.name for item in props.mapping], mapping_of(props)


def settings_dict(props, fps: float) -> dict:
    """The job settings (docs/api.md) from the panel."""
    settings = {"emotion": props.emotion, "intensity": props.intensity, "temperature": props.temperature,
                "pose_temperature": props.pose_temperature, "style_temperature": props.style_temperature,
                "seed": props.seed, "takes": props.takes,
                "pose": props.use_pose, "pose_amount": props.pose_amount, "blinks": props.blinks, "fps": fps,
                "render": props.render_preview, "render_size": render_size_of(props)}
    if props.use_reference:
        if not props.reference:
            raise ValueError("press 'Reference From Current Pose' first, or turn the reference off")
        settings["reference"] = [item.value for item in props.reference]
    return settings


def snapshot(context: bpy.types.Context) -> tuple[Snapshot, jobs.GenerateRequest]:
    """Read and check everything Generate needs; raises ValueError with a message for the user."""
    scene, props = context.scene, settings_of(context)
    audio, add_strip, frame_start = _audio_and_start(scene, props)
    create = props.target_mode == "CREATE"
    if not create and (props.target is None or props.target.data.shape_keys is None):
        raise ValueError("choose a mesh with shape keys as the target (or create the FlowVQ head)")
    if not create and not mapping_of(props):
        raise ValueError("no shape key of the target matches a face-model name: press 'Match Shape Keys'")
    portrait = portrait_of(props)
    fps = scene_fps(scene)
    snap = Snapshot(audio=audio, add_audio_strip=add_strip, frame_start=frame_start, fps=fps,
                    create_head=create, target_name="" if create else props.target.name,
                    mapping={} if create else mapping_of(props), tolerance=props.tolerance,
                    with_pose=props.use_pose)
    request = jobs.GenerateRequest(audio=audio, settings=settings_dict(props, fps), portrait=portrait,
                                   frames_dir=new_frames_dir("generate") if props.render_preview else None,
                                   face_model=face_model_for if create else None)
    return snap, request


def _keep_artist_action(owner: bpy.types.ID) -> None:
    """Give the Action now driving ``owner`` a fake user so reassigning never loses it."""
    action = keys.assigned_action(owner)
    if action is not None:
        action.use_fake_user = True


def switch_take(scene: bpy.types.Scene, index: int) -> None:
    """Make take ``index`` drive its target and show its preview frames."""
    props = scene.flowvq
    item = props.take_items[index]
    target = item.target
    for owner, action in ((target.data.shape_keys, item.key_action), (target, item.pose_action)):
        if action is not None:
            _keep_artist_action(owner)
            keys.assign(owner, action)
    props.active_take = index
    if item.frames_dir and props.preview_plane is not None:
        image = preview.load_sequence(preview.frames_dir_path(item.frames_dir, bpy.data.filepath))
        preview.show_sequence(props.preview_plane, target, image, item.frame_start, item.frame_count)


def _target_for(scene: bpy.types.Scene, snap: Snapshot, model: FaceModel | None):
    """(target object, mapping): a new FlowVQ head, or the chosen mesh with the panel's mapping."""
    if not snap.create_head:
        target = bpy.data.objects.get(snap.target_name)
        if target is None or target.data.shape_keys is None:
            raise ValueError(f"the target mesh '{snap.target_name}' (or its shape keys) was removed while generating")
        return target, snap.mapping
    head = build_head(model, HEAD_NAME, scene.collection)
    scene.flowvq.head = head
    return head, {name: name for name in model.names}


def apply_generate(scene: bpy.types.Scene, snap: Snapshot, result: jobs.GenerateResult) -> str:
    """Put a finished Generate job into the scene (main thread); returns the status line.

    Raises ValueError, before changing anything, when the chosen target mesh is gone.
    """
    props = scene.flowvq
    target, mapping = _target_for(scene, snap, result.face_model)
    first = len(props.take_items)
    kept = 0
    for take in result.takes:
        written = takes.write_take(take, target, mapping, snap.frame_start, snap.fps, snap.tolerance,
                                   snap.with_pose)
        kept += written.kept_edited
        item = props.take_items.add()
        item.name = written.key_action.name
        item.key_action, item.pose_action, item.target = written.key_action, written.pose_action, target
        item.frame_start, item.frame_count, item.fps = snap.frame_start, written.frame_count, snap.fps
        item.meta = written.meta
        if take["take"] in result.frame_dirs:
            item.frames_dir = preview.stored_frames_dir(result.frame_dirs[take["take"]], bpy.data.filepath)
    note = _add_audio(scene, snap) if snap.add_audio_strip else ""
    scene_utils.set_frame_range(scene, snap.frame_start, props.take_items[first].frame_count)
    if result.frame_dirs:
        props.preview_plane = preview.ensure_plane(props.preview_plane, target, scene.collection)
    switch_take(scene, first)
    if kept:
        note += f"; {kept} edited Action(s) of the same name kept"
    return f"{len(result.takes)} take(s) generated{note}"


def _add_audio(scene: bpy.types.Scene, snap: Snapshot) -> str:
    """Add the clip as the take's sound strip; returns a note for the status line when Blender
    cannot (a clip it cannot read, or a Blender built without audio, such as the ``bpy`` module
    4.2): the takes are applied all the same."""
    try:
        scene_utils.add_sound_strip(scene, snap.audio, snap.frame_start)
    except RuntimeError as exc:
        return f"; no sound strip ({str(exc).removeprefix('Error: ').strip()})"
    return ""


def apply_render(scene: bpy.types.Scene, index: int, frames_dir: Path) -> str:
    """Show re-rendered frames for take ``index`` (main thread); returns the status line."""
    props = scene.flowvq
    item = props.take_items[index]
    item.frames_dir = preview.stored_frames_dir(frames_dir, bpy.data.filepath)
    props.preview_plane = preview.ensure_plane(props.preview_plane, item.target, scene.collection)
    preview.show_sequence(props.preview_plane, item.target, preview.load_sequence(frames_dir),
                          item.frame_start, item.frame_count)
    return "preview re-rendered from the curves"


class JobOperator:
    """The part Generate and Re-render share: `job` reads the scene and returns the background job
    (a ValueError is a message for the user, and nothing starts); `execute` starts it. One job runs
    at a time."""

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return active.task is None

    def job(self, context: bpy.types.Context) -> Job:
        raise NotImplementedError

    def execute(self, context: bpy.types.Context) -> set[str]:
        try:
            job = self.job(context)
        except ValueError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        start_task(context, job)
        return {"FINISHED"}


class FLOWVQ_OT_generate(JobOperator, bpy.types.Operator):
    """Generate takes from the speech clip on the server (in the background)"""

    bl_idname = "flowvq.generate"
    bl_label = "Generate"

    def job(self, context: bpy.types.Context) -> Job:
        snap, request = snapshot(context)
        return Job(partial(jobs.generate, request), lambda scene, result: apply_generate(scene, snap, result), request.frames_dir)


class FLOWVQ_OT_rerender(JobOperator, bpy.types.Operator):
    """Render preview frames from the active take's curves as they are now (hand edits included)"""

    bl_idname = "flowvq.rerender"
    bl_label = "Re-render From Curves"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return super().poll(context) and len(context.scene.flowvq.take_items) > 0

    def job(self, context: bpy.types.Context) -> Job:
        props = settings_of(context)
        index = props.active_take
        item = props.take_items[index]
        names, mapping = names_and_mapping(props, item.target)
        take = takes.sample_take(item.target, mapping, names, item.key_action, item.pose_action,
                                 item.frame_start, item.frame_count, item.fps, json.loads(item.meta))
        request = jobs.RenderRequest(take, {"render_size": render_size_of(props)}, portrait_of(props),
                                     new_frames_dir("render"))
        return Job(partial(jobs.render, request), lambda scene, frames_dir: apply_render(scene, index, frames_dir), request.frames_dir)


class FLOWVQ_OT_cancel(bpy.types.Operator):
    """Cancel the running job"""

    bl_idname = "flowvq.cancel"
    bl_label = "Cancel"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return active.task is not None

    def execute(self, context: bpy.types.Context) -> set[str]:
        active.task.cancel()
        return {"FINISHED"}


def ask_server(context: bpy.types.Context, question: Callable[[Client], T]) -> T:
    """``question(client)`` asked right away (main thread: only quick requests) of the preferences'
    server; raises `ServerError` with a message for the user."""
    client = Client(connection(context))
    try:
        return question(client)
    finally:
        client.close()


class FLOWVQ_OT_check_server(bpy.types.Operator):
    """Ask the server whether it is ready, and which emotions it offers"""

    bl_idname = "flowvq.check_server"
    bl_label = "Check Server"

    def execute(self, context: bpy.types.Context) -> set[str]:
        props = settings_of(context)
        try:
            health, info = ask_server(context, lambda client: (client.health(), client.info()))
        except ServerError as exc:
            props.server_status = str(exc)
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        set_emotions(info["emotions"])
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


class FLOWVQ_OT_match_keys(bpy.types.Operator):
    """Match the target's shape keys to the face model's names (case, separators, aliases)"""

    bl_idname = "flowvq.match_keys"
    bl_label = "Match Shape Keys"

    def execute(self, context: bpy.types.Context) -> set[str]:
        props = settings_of(context)
        target = props.target
        if target is None or target.data.shape_keys is None:
            self.report({"ERROR"}, "choose a mesh with shape keys first")
            return {"CANCELLED"}
        try:
            names = ask_server(context, lambda client: client.info()["names"])
        except ServerError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        fill_mapping(props, names, target)
        return {"FINISHED"}


def fill_mapping(props, names: list[str], target: bpy.types.Object) -> None:
    """Set the panel's mapping (and unmatched list) from name matching on ``target``'s keys."""
    blocks = target.data.shape_keys.key_blocks
    match = match_names(names, [b.name for b in blocks if b != target.data.shape_keys.reference_key])
    props.mapping.clear()
    for name in names:
        item = props.mapping.add()
        item.name, item.key = name, match.mapping.get(name, "")
    props.unmatched = ", ".join(match.unmatched)


class FLOWVQ_OT_reference_from_pose(bpy.types.Operator):
    """Use the target's shape-key values at the current frame as the reference coefficients"""

    bl_idname = "flowvq.reference_from_pose"
    bl_label = "Reference From Current Pose"

    def execute(self, context: bpy.types.Context) -> set[str]:
        props = settings_of(context)
        target = props.head if props.target_mode == "CREATE" else props.target
        if target is None or target.data.shape_keys is None:
            self.report({"ERROR"}, "there is no target with shape keys yet")
            return {"CANCELLED"}
        names, mapping = names_and_mapping(props, target)
        props.reference.clear()
        for name, value in zip(names, takes.reference_from_pose(target, mapping, names)):
            item = props.reference.add()
            item.name, item.value = name, value
        props.use_reference = True
        return {"FINISHED"}


class FLOWVQ_OT_switch_take(bpy.types.Operator):
    """Make this take drive the target (the Action it replaces is kept)"""

    bl_idname = "flowvq.switch_take"
    bl_label = "Use Take"

    index: IntProperty()

    def invoke(self, context: bpy.types.Context, event) -> set[str]:
        item = settings_of(context).take_items[self.index]
        current = keys.assigned_action(item.target.data.shape_keys)
        if current is not None and takes.is_edited(current):
            return context.window_manager.invoke_confirm(self, event)
        return self.execute(context)

    def execute(self, context: bpy.types.Context) -> set[str]:
        switch_take(context.scene, self.index)
        return {"FINISHED"}


def takes_to_nla(scene: bpy.types.Scene) -> None:
    """One NLA track per take on its target (shape keys and object), all muted but the active
    take's, so takes can be compared by unmuting or soloing tracks."""
    props = scene.flowvq
    for index, item in enumerate(props.take_items):
        for owner, action in ((item.target.data.shape_keys, item.key_action), (item.target, item.pose_action)):
            if action is not None:
                track = keys.push_to_nla(owner, action, item.name, item.frame_start)
                track.mute = index != props.active_take


class FLOWVQ_OT_takes_to_nla(bpy.types.Operator):
    """Put every take on its own NLA track (muted but the active one) to compare them"""

    bl_idname = "flowvq.takes_to_nla"
    bl_label = "Takes to NLA"

    @classmethod
    def poll(cls, context: bpy.types.Context) -> bool:
        return len(context.scene.flowvq.take_items) > 0

    def execute(self, context: bpy.types.Context) -> set[str]:
        takes_to_nla(context.scene)
        return {"FINISHED"}


classes = (FLOWVQ_OT_generate, FLOWVQ_OT_takes_to_nla, FLOWVQ_OT_rerender, FLOWVQ_OT_cancel, FLOWVQ_OT_check_server,
           FLOWVQ_OT_start_server, FLOWVQ_OT_stop_server, FLOWVQ_OT_match_keys,
           FLOWVQ_OT_reference_from_pose, FLOWVQ_OT_switch_take)
