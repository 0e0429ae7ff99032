"""The sidebar panel (3D View > Sidebar > FlowVQ) and the status-bar progress line."""

import bpy

from .character import armature_of
from .props import NO_BLEND
from .runner import active
from .scene import STRIPS

__all__ = ["FLOWVQ_UL_takes", "FLOWVQ_PT_main", "draw_status", "classes"]


class FLOWVQ_UL_takes(bpy.types.UIList):
    """One row per generated take, with a button that makes it drive the target."""

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index=0):
        row = layout.row(align=True)
        row.label(text=item.name, icon="ACTION")
        row.operator("flowvq.switch_take", text="", icon="PLAY").index = index


def _draw_audio(layout: bpy.types.UILayout, context: bpy.types.Context, props) -> None:
    """Audio source: a file, or a sound strip already in the sequencer; then the line's text."""
    box = layout.box()
    box.row().prop(props, "audio_source", expand=True)
    if props.audio_source == "FILE":
        box.prop(props, "audio_path", text="")
    elif context.scene.sequence_editor is not None:
        box.prop_search(props, "audio_strip", context.scene.sequence_editor, STRIPS)
    else:
        box.label(text="The sequencer has no strips", icon="INFO")
    box.prop(props, "dialogue")
    if not props.dialogue.strip():
        box.prop(props, "closures")


def _draw_style(layout: bpy.types.UILayout, props) -> None:
    """Emotion or reference, then sampling; one setting per row (here and below), so no label is
    cut at the sidebar's default width."""
    box = layout.box()
    box.prop(props, "use_reference")
    if props.use_reference:
        box.operator("flowvq.reference_from_pose", icon="EYEDROPPER")
        box.label(text=f"{len(props.reference)} reference coefficients")
    else:
        box.prop(props, "emotion")
        box.prop(props, "intensity", slider=True)
        box.prop(props, "blend")
        row = box.row()
        row.enabled = props.blend != NO_BLEND
        row.prop(props, "blend_weight", slider=True)
    col = layout.column(align=True)
    for name in ("temperature", "style_temperature", "seed", "takes"):
        col.prop(props, name)
    layout.prop(props, "blinks")
    layout.prop(props, "gaze")
    if props.target_mode == "SELECTED":
        row = layout.row(align=True)
        row.prop(props, "eye_bones")
        sub = row.row(align=True)
        sub.enabled = props.eye_bones
        sub.prop(props, "eye_turn", text="Turn")


def _draw_pose(layout: bpy.types.UILayout, props) -> None:
    """Head pose on/off, with its amount, variation, motion and bone greyed out while it is off."""
    box = layout.box()
    box.prop(props, "use_pose")
    col = box.column(align=True)
    col.enabled = props.use_pose
    col.prop(props, "pose_amount")
    col.prop(props, "pose_temperature")
    if props.target_mode == "SELECTED":
        col.prop(props, "pose_translation", text="")
        armature = armature_of(props.target) if props.target is not None else None
        if armature is not None:
            col.prop_search(props, "head_bone", armature.pose, "bones", text="Bone")


def _draw_preview(layout: bpy.types.UILayout, props) -> None:
    """Preview frames on/off, the portrait, and the frame size greyed out while they are off."""
    box = layout.box()
    box.prop(props, "render_preview")
    box.prop(props, "portrait_path")  # also Re-render's portrait, so editable with previews off
    row = box.row()
    row.enabled = props.render_preview
    row.prop(props, "render_size")


def _draw_character(layout: bpy.types.UILayout, props) -> None:
    """The character's meshes (each can be switched off) and the shape-key mapping."""
    for part in props.parts:
        row = layout.row()
        row.prop(part, "enabled", text=part.name)
        row.label(text=f"{part.driven} keys")
    layout.prop(props, "preset")
    if props.unmatched:
        layout.label(text=f"Not driven: {props.unmatched}", icon="INFO")
    row = layout.row(align=True)
    row.operator("flowvq.save_mapping", icon="EXPORT")
    row.operator("flowvq.load_mapping", icon="IMPORT")
    layout.prop(props, "show_mapping", icon="TRIA_DOWN" if props.show_mapping else "TRIA_RIGHT", emboss=False)
    if props.show_mapping:
        column = layout.column(align=True)
        for item in props.mapping:
            split = column.split(factor=0.45, align=True)
            split.label(text=item.name)
            split.prop(item, "terms", text="")


def _draw_target(layout: bpy.types.UILayout, props) -> None:
    """Create the FlowVQ head, or drive a character through an editable mapping."""
    box = layout.box()
    box.prop(props, "target_mode", text="")
    if props.target_mode == "SELECTED":
        box.prop(props, "target")
        row = box.row(align=True)
        row.operator("flowvq.find_character", icon="LINKED")
        row.operator("flowvq.name_keys", text="", icon="SORTALPHA")
        if props.target is not None and props.parts:
            _draw_character(box, props)
    layout.prop(props, "tolerance")


def _draw_run(layout: bpy.types.UILayout, props) -> None:
    """Generate, or progress with Cancel; then the takes."""
    if props.running:
        layout.progress(factor=props.progress, text=props.status)
        layout.operator("flowvq.cancel", icon="CANCEL")
    else:
        layout.operator("flowvq.generate", icon="PLAY")
        if props.status:
            layout.label(text=props.status)
    if props.take_items:
        layout.template_list("FLOWVQ_UL_takes", "", props, "take_items", props, "active_take", rows=3)
        row = layout.row(align=True)
        row.operator("flowvq.takes_to_nla", icon="NLA")
        row.operator("flowvq.rerender", text="Re-render", icon="RENDER_ANIMATION")


class FLOWVQ_PT_main(bpy.types.Panel):
    """FlowVQ: speech + emotion to facial animation."""

    bl_label = "FlowVQ Talker"
    bl_idname = "FLOWVQ_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "FlowVQ"

    def draw(self, context: bpy.types.Context) -> None:
        props = context.scene.flowvq
        layout = self.layout
        row = layout.row()
        row.label(text=f"Server: {props.server_status}")
        row.operator("flowvq.check_server", text="", icon="FILE_REFRESH")
        _draw_audio(layout, context, props)
        _draw_style(layout, props)
        _draw_pose(layout, props)
        _draw_preview(layout, props)
        _draw_target(layout, props)
        _draw_run(layout, props)


def draw_status(self, context: bpy.types.Context) -> None:
    """Status-bar line while a job runs (appended to ``STATUSBAR_HT_header``)."""
    if active.task is not None:
        props = context.scene.flowvq
        self.layout.label(text=f"FlowVQ: {props.status} {props.progress:.0%}", icon="TIME")


classes = (FLOWVQ_UL_takes, FLOWVQ_PT_main)
