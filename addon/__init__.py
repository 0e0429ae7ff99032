"""FlowVQ Talker for Blender: speech + emotion -> shape-key and head-pose animation, from a local
FlowVQ server (docs/addon.md). This package runs inside Blender: bpy, numpy, requests, stdlib only."""

import atexit

import bpy

from . import operators, prefs, preview, props, ui

classes = (*props.classes, *prefs.classes, *operators.classes, *ui.classes)


def register() -> None:
    """Register every class, the scene pointer, the save handlers (frames folders relative to the
    .blend), the status-bar line and the server stop at exit."""
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.flowvq = bpy.props.PointerProperty(type=props.FlowVQSettings)
    bpy.app.handlers.save_pre.append(preview.before_save)
    bpy.app.handlers.save_post.append(preview.after_save)
    bpy.types.STATUSBAR_HT_header.append(ui.draw_status)
    atexit.register(operators.local_server.stop)


def unregister() -> None:
    """Undo `register` in reverse order; a running job is cancelled and a started server stopped."""
    atexit.unregister(operators.local_server.stop)
    operators.local_server.stop()
    if operators.active.task is not None:
        operators.active.task.cancel()
    if bpy.app.timers.is_registered(operators.poll_task):
        bpy.app.timers.unregister(operators.poll_task)
    bpy.types.STATUSBAR_HT_header.remove(ui.draw_status)
    bpy.app.handlers.save_post.remove(preview.after_save)
    bpy.app.handlers.save_pre.remove(preview.before_save)
    del bpy.types.Scene.flowvq
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
