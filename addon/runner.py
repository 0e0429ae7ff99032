"""The one background job of the add-on: a `jobs.Task` started by an operator, followed by the
timer callback `poll_task`, which alone touches bpy while it runs and applies the result to the
scene when the task ends."""

import shutil
import threading
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

import bpy

from . import jobs
from .client import Client
from .prefs import connection

__all__ = ["Job", "ActiveTask", "active", "poll_task", "start_task", "discard_frames", "TIMER_INTERVAL_S"]

TIMER_INTERVAL_S = 0.1


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
    props = context.scene.flowvq
    client = Client(connection(context))
    active.task = jobs.Task(partial(job.work, client), on_end=client.close).start()
    active.scene_name, active.job = context.scene.name, job
    props.running, props.progress, props.status = True, 0.0, "starting"
    if not bpy.app.timers.is_registered(poll_task):
        bpy.app.timers.register(poll_task, first_interval=TIMER_INTERVAL_S)
