"""The add-on's scene state: one `FlowVQSettings` PropertyGroup behind ``Scene.flowvq``."""

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty,
                       PointerProperty, StringProperty)

__all__ = ["FlowVQValue", "FlowVQMapping", "FlowVQTake", "FlowVQSettings", "set_emotions", "classes",
           "DEFAULT_EMOTIONS"]

# The emotion classes of docs/api.md; replaced by the server's own list once it has been reached.
DEFAULT_EMOTIONS = ("neutral", "angry", "contempt", "disgusted", "fear", "happy", "sad", "surprised", "talk")
# Path properties that may hold a blend-relative ``//`` path say so from Blender 4.5 on (where
# storing one otherwise warns); older Blenders lack the option and accept such paths as they are.
_BLEND_RELATIVE = ({"PATH_SUPPORTS_BLEND_RELATIVE"}
                   if "is_path_supports_blend_relative" in bpy.types.Property.bl_rna.properties else set())
# Blender keeps only references to dynamic enum strings: the items must outlive the callback.
_emotion_items: list[tuple[str, str, str]] = [(e, e.capitalize(), "") for e in DEFAULT_EMOTIONS]


def set_emotions(emotions: list[str]) -> None:
    """Offer the server's emotion classes in the Emotion menu."""
    _emotion_items[:] = [(e, e.capitalize(), "") for e in emotions]


def _emotion_enum(_self, _context) -> list[tuple[str, str, str]]:
    """Items of the Emotion menu."""
    return _emotion_items


def _is_mesh(_self, obj: bpy.types.Object) -> bool:
    """Only meshes can be targets."""
    return obj.type == "MESH"


class FlowVQValue(bpy.types.PropertyGroup):
    """One named coefficient (``name`` is the model's coefficient name)."""

    value: FloatProperty(name="Value")


class FlowVQMapping(bpy.types.PropertyGroup):
    """Model coefficient ``name`` -> the target's shape key ``key`` (empty: not driven)."""

    key: StringProperty(name="Shape Key")


class FlowVQTake(bpy.types.PropertyGroup):
    """A generated take: its Actions, where it starts, and its preview frames."""

    key_action: PointerProperty(type=bpy.types.Action, name="Shape-key Action")
    pose_action: PointerProperty(type=bpy.types.Action, name="Pose Action")
    target: PointerProperty(type=bpy.types.Object, name="Target")
    frame_start: IntProperty(name="Start")
    frame_count: IntProperty(name="Frames")
    fps: FloatProperty(name="FPS")
    frames_dir: StringProperty(name="Preview Frames", subtype="DIR_PATH", options=_BLEND_RELATIVE,
                               description="Relative to the .blend (//) when beside it")
    meta: StringProperty(name="Take", description="JSON: take, seed, emotion, face_model")


class FlowVQSettings(bpy.types.PropertyGroup):
    """Everything the panel edits, and the state of the running job."""

    audio_source: EnumProperty(name="Audio", items=[("FILE", "File", "A speech clip on disk"),
                                                    ("STRIP", "Sound Strip", "A sound strip in the sequencer")])
    audio_path: StringProperty(name="Speech Clip", subtype="FILE_PATH")
    audio_strip: StringProperty(name="Sound Strip")
    emotion: EnumProperty(name="Emotion", items=_emotion_enum)
    intensity: FloatProperty(name="Intensity", default=1.0, min=0.0, max=1.0)
    use_reference: BoolProperty(name="Reference From Pose", description=(
        "Generate from reference coefficients (taken from the target's shape keys) instead of the emotion"))
    reference: CollectionProperty(type=FlowVQValue)
    temperature: FloatProperty(name="Temperature", default=0.1, min=0.0, max=2.0, description=(
        "Spread of the expression: 0 gives the most likely lips and face, more gives varied takes "
        "whose lips follow the speech less closely"))
    pose_temperature: FloatProperty(name="Variation", default=0.7, min=0.0, max=2.0, description=(
        "Spread of the head motion between takes"))
    style_temperature: FloatProperty(name="Style Variation", default=1.0, min=0.0, max=2.0, description=(
        "How much each take's brows, eyes, cheeks and nose differ from the emotion's average over the "
        "whole take: 0 gives every take the average, 1 varies them as much as the training data's"))
    seed: IntProperty(name="Seed", default=0, min=0)
    takes: IntProperty(name="Takes", default=1, min=1, max=16)
    use_pose: BoolProperty(name="Head Pose", default=True)
    pose_amount: FloatProperty(name="Amount", default=1.0, min=0.0, max=2.0)
    blinks: BoolProperty(name="Blinks", default=True, description=(
        "Add random blinks at the emotion's rate to each take (drawn from its seed)"))
    portrait_path: StringProperty(name="Portrait", subtype="FILE_PATH", description=(
        "The source portrait the preview frames animate"))
    render_preview: BoolProperty(name="Preview Frames", description=(
        "Render each take on the portrait and show the frames on a plane beside the head"))
    render_size: IntProperty(name="Size", default=256, min=64, max=1024, step=8)
    target_mode: EnumProperty(name="Target", items=[
        ("CREATE", "Create FlowVQ Head", "Build a head from the server's face model"),
        ("SELECTED", "Existing Mesh", "Drive the shape keys of a mesh, matched by name")])
    target: PointerProperty(type=bpy.types.Object, name="Mesh", poll=_is_mesh)
    mapping: CollectionProperty(type=FlowVQMapping)
    unmatched: StringProperty(name="Unmatched Keys")
    tolerance: FloatProperty(name="Reduction Tolerance", default=0.0, min=0.0, max=0.2, precision=3,
                             description="Largest change a dropped key may cause (0: key every frame)")
    take_items: CollectionProperty(type=FlowVQTake)
    active_take: IntProperty(name="Take")
    head: PointerProperty(type=bpy.types.Object, name="FlowVQ Head")
    preview_plane: PointerProperty(type=bpy.types.Object, name="Preview Plane")
    running: BoolProperty(name="Running")
    progress: FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR")
    status: StringProperty(name="Status")
    server_status: StringProperty(name="Server", default="not checked")


classes = (FlowVQValue, FlowVQMapping, FlowVQTake, FlowVQSettings)
