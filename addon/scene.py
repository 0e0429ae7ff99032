"""The scene around a take: the sound strip and the frame range (Blender 4.2 to 5.0)."""

from pathlib import Path

import bpy

__all__ = ["AUDIO_STRIP_NAME", "STRIPS", "strip_collection", "sound_strips", "add_sound_strip", "set_frame_range"]

AUDIO_STRIP_NAME = "FlowVQ audio"
# The sequence editor's property holding its top-level strips: ``strips`` since 4.4, ``sequences`` before.
STRIPS = "strips" if "strips" in bpy.types.SequenceEditor.bl_rna.properties else "sequences"


def strip_collection(scene: bpy.types.Scene):
    """The sequencer's top-level strips (`STRIPS`); the sequencer is created on demand."""
    return getattr(scene.sequence_editor or scene.sequence_editor_create(), STRIPS)


def sound_strips(scene: bpy.types.Scene) -> list:
    """The scene's sound strips (none when it has no sequencer)."""
    if scene.sequence_editor is None:
        return []
    return [strip for strip in strip_collection(scene) if strip.type == "SOUND"]


def add_sound_strip(scene: bpy.types.Scene, audio: Path, frame_start: int):
    """Put the clip on a free channel as the strip `AUDIO_STRIP_NAME` starting at ``frame_start``,
    replacing the add-on's previous strip (never a strip the artist added)."""
    strips = strip_collection(scene)
    old = strips.get(AUDIO_STRIP_NAME)
    if old is not None:
        strips.remove(old)
    channel = max((strip.channel for strip in strips), default=0) + 1
    return strips.new_sound(AUDIO_STRIP_NAME, str(audio), channel, frame_start)


def set_frame_range(scene: bpy.types.Scene, frame_start: int, frame_end: int) -> None:
    """Make the scene's range ``frame_start``..``frame_end`` (inclusive)."""
    scene.frame_start = frame_start
    scene.frame_end = frame_end
