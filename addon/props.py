"""The add-on's scene state: one `FlowVQSettings` PropertyGroup behind ``Scene.flowvq``."""

import bpy
from bpy.props import (BoolProperty, CollectionProperty, EnumProperty, FloatProperty, FloatVectorProperty,
                       IntProperty, IntVectorProperty, PointerProperty, StringProperty)

__all__ = ["FlowVQValue", "FlowVQMapping", "FlowVQPart", "FlowVQBinding", "FlowVQTake", "FlowVQSettings",
           "set_emotions", "NO_BLEND", "classes", "DEFAULT_EMOTIONS", "PRESET_ITEMS"]

# The emotion classes of docs/api.md; replaced by the server's own list once it has been reached.
DEFAULT_EMOTIONS = ("neutral", "angry", "contempt", "disgusted", "fear", "happy", "sad", "surprised", "talk")
# Path properties that may hold a blend-relative ``//`` path say so from Blender 4.5 on (where
# storing one otherwise warns); older Blenders lack the option and accept such paths as they are.
_BLEND_RELATIVE = ({"PATH_SUPPORTS_BLEND_RELATIVE"}
                   if "is_path_supports_blend_relative" in bpy.types.Property.bl_rna.properties else set())
# Blender keeps only references to dynamic enum strings: the items must outlive the callback.
_emotion_items: list[tuple[str, str, str]] = [(e, e.capitalize(), "") for e in DEFAULT_EMOTIONS]
NO_BLEND = "NONE"
_blend_items: list[tuple[str, str, str]] = [(NO_BLEND, "None", "One emotion only"), *_emotion_items]


def set_emotions(emotions: list[str]) -> None:
    """Offer the server's emotion classes in the Emotion and Blend menus."""
    _emotion_items[:] = [(e, e.capitalize(), "") for e in emotions]
    _blend_items[1:] = _emotion_items


def _emotion_enum(_self, _context) -> list[tuple[str, str, str]]:
    """Items of the Emotion menu."""
    return _emotion_items


def _blend_enum(_self, _context) -> list[tuple[str, str, str]]:
    """Items of the Blend menu: none, or a second emotion."""
    return _blend_items


def _is_mesh(_self, obj: bpy.types.Object) -> bool:
    """Only meshes can be targets."""
    return obj.type == "MESH"


def _is_armature(_self, obj: bpy.types.Object) -> bool:
    """Only armatures carry a head bone."""
    return obj.type == "ARMATURE"


def _target_picked(self, _context) -> None:
    """The artist picked the target in the panel: selecting another mesh no longer changes it
    (`character.follow_selection`), until the field is cleared."""
    self.target_pinned = self.target is not None


# The mapping presets of `mapping.PRESETS`, and AUTO: the one that matches most of the rig's keys.
PRESET_ITEMS = [("AUTO", "Auto", "The convention that matches most of the character's shape keys"),
                ("arkit", "Apple ARKit", "The 52 ARKit names (also Live Link Face's JawOpen style)"),
                ("rpm", "Ready Player Me / Avaturn", "ARKit names plus the Oculus visemes"),
                ("cc4", "Character Creator 4", "CC4 / iClone extended facial profile"),
                ("vrm", "VRM / VRoid", "VRM expressions (A I U E O, blinks, joy...) and VRoid Fcl_ keys"),
                ("faceit", "Faceit", "Faceit's ARKit expression set"),
                ("valid", "VALID / Character Generator", "Autodesk Character Generator heads (h_expressions.*_h), "
                 "as the VALID avatars ship them"),
                ("CUSTOM", "Custom", "The mapping below as edited or loaded from a JSON preset")]


class FlowVQValue(bpy.types.PropertyGroup):
    """One named coefficient (``name`` is the model's coefficient name)."""

    value: FloatProperty(name="Value")


class FlowVQMapping(bpy.types.PropertyGroup):
    """The character's shape key ``name`` <- ``terms``: model names with weights
    (``0.5*mouthSmileLeft + 0.5*mouthSmileRight``), or ``viseme:<id>`` (`mapping.parse_terms`)."""

    terms: StringProperty(name="Drive", description=(
        "Model coefficients with weights, e.g. jawOpen or 0.5*mouthSmileLeft + 0.5*mouthSmileRight, "
        "or viseme:PP for a viseme key; empty: not driven"))


class FlowVQPart(bpy.types.PropertyGroup):
    """A mesh of the character whose shape keys the mapping drives; off: left alone."""

    obj: PointerProperty(type=bpy.types.Object, name="Mesh")
    enabled: BoolProperty(name="Drive", default=True)
    driven: IntProperty(name="Keys Driven")


class FlowVQBinding(bpy.types.PropertyGroup):
    """One animated ID of a take: ``obj``'s shape keys (``what`` KEYS) or ``obj`` itself (POSE: the
    armature with the head bone, or the object's delta transforms), and the Action driving it."""

    obj: PointerProperty(type=bpy.types.Object, name="Object")
    what: EnumProperty(name="What", items=[("KEYS", "Shape Keys", ""), ("POSE", "Head Pose", "")])
    action: PointerProperty(type=bpy.types.Action, name="Action")


class FlowVQTake(bpy.types.PropertyGroup):
    """A generated take: the Actions of every mesh and of the head pose, where it starts, how its
    pose was converted, and its preview frames."""

    bindings: CollectionProperty(type=FlowVQBinding)
    target: PointerProperty(type=bpy.types.Object, name="Target", description="The head mesh")
    bone: StringProperty(name="Head Bone", description="The pose bone the head pose is keyed on ('' for none)")
    head_pose: BoolProperty(name="Head Pose", default=True, description=(
        "Whether the take's POSE Action carries the head pose (else it turns only eye bones)"))
    eyes: StringProperty(name="Eye Bones", description=(
        "JSON: [side, bone, its axes in the face's frame (row-major), eye turn, the eyeLook curves its shape keys "
        "show] of each eye bone the take turns"))
    pose_frame: FloatVectorProperty(name="Pose Frame", size=9, description=(
        "The pose owner's axes in the face's frame, row-major (posemath.relative_rotations)"))
    pose_to_local: FloatVectorProperty(name="Pose Translation Map", size=9, description=(
        "Face-frame metres to the owner's location units, row-major (posemath.local_translations)"))
    direct: StringProperty(name="Direct Keys", description=(
        "JSON: model name -> the head's shape key that carries it alone (read back by Re-render)"))
    frame_start: IntProperty(name="Start")
    frame_count: IntProperty(name="Frames")
    fps: FloatProperty(name="FPS")
    frames_dir: StringProperty(name="Preview Frames", subtype="DIR_PATH", options=_BLEND_RELATIVE,
                               description="Relative to the .blend (//) when beside it")
    meta: StringProperty(name="Take", description="JSON: take, seed, emotion, face_model, names")


class FlowVQSettings(bpy.types.PropertyGroup):
    """Everything the panel edits, and the state of the running job."""

    audio_source: EnumProperty(name="Audio", items=[("FILE", "File", "A speech clip on disk"),
                                                    ("STRIP", "Sound Strip", "A sound strip in the sequencer")])
    audio_path: StringProperty(name="Speech Clip", subtype="FILE_PATH")
    audio_strip: StringProperty(name="Sound Strip")
    dialogue: StringProperty(name="Dialogue", description=(
        "What the clip says (optional): its phones, aligned to the audio, move the jaw as real speakers do, seal the "
        "lips on every p, b and m and shape them on every f, v and r. Words as spoken, numbers spelled out; a line "
        "that cannot be aligned falls back to "
        "the closures heard in the audio"))
    closures: EnumProperty(name="Closures", default="phones", description=(
        "Lip closures without dialogue: seal the lips on the p, b and m and shape them on the f, v and r a speech "
        "recogniser hears in the clip"), items=[
        ("phones", "Heard Phones", "Phone recognition: fast, catches the most closures"),
        ("words", "Heard Words", "Word recognition, then alignment: slower, fewer closures where there are none"),
        ("off", "Off", "The model's lips alone")])
    emotion: EnumProperty(name="Emotion", items=_emotion_enum)
    intensity: FloatProperty(name="Intensity", default=1.0, min=0.0, max=1.5, description=(
        "0 is plain talk, 1 the emotion's full expression; above 1 exaggerates it for stylised characters"))
    blend: EnumProperty(name="Blend", items=_blend_enum, description="A second emotion mixed into the first")
    blend_weight: FloatProperty(name="Blend Weight", default=0.5, min=0.0, max=1.0, subtype="FACTOR", description=(
        "The second emotion's share: 0.3 is 70% of the first emotion and 30% of the blend"))
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
    gaze: BoolProperty(name="Eye Gaze", default=True, description=(
        "Move the eyes as a talker's do: saccades away from and back to the camera, steady against "
        "the head's nods, following its slow turns (drawn from each take's seed)"))
    eye_bones: BoolProperty(name="Eye Bones", default=True, description=(
        "Turn the character's eye bones (VRoid's J_Adj_L_FaceEye, Mixamo's LeftEye, CC_Base_L_Eye...) with the "
        "take's gaze, where no driven shape key already turns the eyeballs"))
    eye_turn: FloatProperty(name="Eye Turn", default=1.0, min=0.05, max=2.0, description=(
        "How far the eye bones turn: 1 turns them as a person's eyes turn (30 degrees sideways and 25 up or down "
        "at a full look); less for stylised eyes that must turn less (a VRM states its own range: its lookAt "
        "range maps turn the bones outputScale degrees for a gaze inputMaxValue degrees away)"))
    portrait_path: StringProperty(name="Portrait", subtype="FILE_PATH", description=(
        "The source portrait the preview frames animate"))
    render_preview: BoolProperty(name="Preview Frames", description=(
        "Render each take on the portrait and show the frames on a plane beside the head"))
    render_size: IntProperty(name="Size", default=256, min=64, max=1024, step=8)
    target_mode: EnumProperty(name="Target", items=[
        ("CREATE", "Create FlowVQ Head", "Build a head from the server's face model"),
        ("SELECTED", "Existing Character", "Drive the shape keys of a character's meshes, matched by name")])
    target: PointerProperty(type=bpy.types.Object, name="Head Mesh", poll=_is_mesh, update=_target_picked,
                            description="The character's head mesh (the selected mesh when left empty)")
    target_pinned: BoolProperty(name="Target Picked", description="The artist picked the target in the panel")
    parts: CollectionProperty(type=FlowVQPart)
    preset: EnumProperty(name="Convention", items=PRESET_ITEMS, description="How the rig's shape keys are named")
    mapping: CollectionProperty(type=FlowVQMapping)
    show_mapping: BoolProperty(name="Mapping", description="Show every shape key of the character and what drives it")
    unmatched: StringProperty(name="Unmatched Keys")
    head_bone: StringProperty(name="Head Bone", description=(
        "The bone that carries the head pose (empty: found by its name, e.g. Head, DEF-head, CC_Base_Head)"))
    pose_translation: EnumProperty(name="Head Motion", items=[
        ("AUTO", "Auto", "Rotation only on a bone (a neck does not slide), rotation and translation on an object"),
        ("ROTATION", "Rotation", "Rotate the head only"),
        ("ROTATION_TRANSLATION", "Rotation + Translation", "Rotate and move the head")])
    server_limits: StringProperty(name="Server Limits", description=(
        "JSON: the request limits the server published (GET /v1/info limits), read by Check Server"))
    model_names: StringProperty(name="Model Names", description=(
        "JSON: the server's coefficient names (GET /v1/info), kept from the last Check Server or Match"))
    range_set: IntVectorProperty(name="Range Set", size=2, description=(
        "The frame range the add-on set last ((0, 0): never), so an artist's own range is never shortened"))
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


classes = (FlowVQValue, FlowVQMapping, FlowVQPart, FlowVQBinding, FlowVQTake, FlowVQSettings)
