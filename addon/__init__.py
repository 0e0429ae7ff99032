"""FlowVQ Talker for Blender: speech + emotion -> shape-key and head-pose animation, from a local
FlowVQ server (docs/addon.md). This package runs inside Blender: bpy, numpy, requests, stdlib only."""

import atexit

import bpy

from . import character, operators, prefs, preview, props, runner, ui

classes = (*props.classes, *prefs.classes, *operators.classes, *ui.classes)
# The owner of the add-on's message-bus subscription (selection changes).
_SUBSCRIBER = object()


def _on_active_object() -> None:
    """Message-bus callback: a newly selected mesh becomes the target unless the artist picked one."""
    character.follow_selection(bpy.context.scene.flowvq, bpy.context.view_layer.objects.active)


@bpy.app.handlers.persistent
def _subscribe(*_args) -> None:
    """Follow the active object (again after a file is opened, which drops subscriptions)."""
    bpy.msgbus.clear_by_owner(_SUBSCRIBER)
    bpy.msgbus.subscribe_rna(key=(bpy.types.LayerObjects, "active"), owner=_SUBSCRIBER, args=(),
                             notify=_on_active_object)


def register() -> None:
    """Register every class, the scene pointer, the save handlers (frames folders relative to the
    .blend), the status-bar line and the server stop at exit."""
    for cls in classes:
        bpy.utils.register_class(cls)
    bpy.types.Scene.flowvq = bpy.props.PointerProperty(type=props.FlowVQSettings)
    bpy.app.handlers.save_pre.append(preview.before_save)
    bpy.app.handlers.save_post.append(preview.after_save)
    bpy.types.STATUSBAR_HT_header.append(ui.draw_status)
    bpy.app.handlers.load_post.append(_subscribe)
    _subscribe()
    atexit.register(operators.local_server.stop)


def unregister() -> None:
    """Undo `register` in reverse order; a running job is cancelled and a started server stopped."""
    atexit.unregister(operators.local_server.stop)
    operators.local_server.stop()
    if runner.active.task is not None:
        runner.active.task.cancel()
    if bpy.app.timers.is_registered(runner.poll_task):
        bpy.app.timers.unregister(runner.poll_task)
    bpy.msgbus.clear_by_owner(_SUBSCRIBER)
    bpy.app.handlers.load_post.remove(_subscribe)
    bpy.types.STATUSBAR_HT_header.remove(ui.draw_status)
    bpy.app.handlers.save_post.remove(preview.after_save)
    bpy.app.handlers.save_pre.remove(preview.before_save)
    del bpy.types.Scene.flowvq
    for cls in reversed(classes):
        bpy.utils.unregister_class(cls)
