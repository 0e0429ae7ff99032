"""Match a mesh's shape-key names to the face model's (ARKit) names. No bpy.

Names compare case- and separator-insensitively (``eye_blink_left`` = ``EyeBlinkLeft``), a side
suffix ``_L``/``.R``/``L`` reads as ``Left``/``Right``, and a few names other rigs commonly use
are aliases (`ALIASES`).
"""

import re
from dataclasses import dataclass

__all__ = ["ALIASES", "normalize", "Match", "match_names", "head_bone", "HEAD_BONE_NAMES", "eye_bones", "EYE_STEMS"]

# Normalized alias -> normalized ARKit name (names of Faceware/Rokoko/VRoid-style rigs).
ALIASES = {
    "mouthopen": "jawopen",
    "jawdrop": "jawopen",
    "blinkleft": "eyeblinkleft",
    "blinkright": "eyeblinkright",
    "smileleft": "mouthsmileleft",
    "smileright": "mouthsmileright",
    "frownleft": "mouthfrownleft",
    "frownright": "mouthfrownright",
    "lipspucker": "mouthpucker",
    "lipsfunnel": "mouthfunnel",
    "browsinnerup": "browinnerup",
    "cheekpuffs": "cheekpuff",
}

_SIDE_SUFFIX = re.compile(r"(?:[_.\- ]([LlRr])|([LR]))$")
_SEPARATORS = re.compile(r"[_.\- ]+")


def normalize(name: str) -> str:
    """The comparison key of a shape-key name: side suffix spelled out, no separators, lower case,
    aliases resolved."""
    side = _SIDE_SUFFIX.search(name)
    if side:
        letter = (side.group(1) or side.group(2)).upper()
        name = name[:side.start()] + ("Left" if letter == "L" else "Right")
    key = _SEPARATORS.sub("", name).lower()
    return ALIASES.get(key, key)


@dataclass(frozen=True)
class Match:
    """``mapping``: model name -> target key; ``missing``: model names with no key;
    ``unmatched``: target keys matching no model name."""

    mapping: dict[str, str]
    missing: list[str]
    unmatched: list[str]


def match_names(model_names: list[str], target_keys: list[str]) -> Match:
    """Match each model name to at most one target key (the first one with the same `normalize`)."""
    by_key: dict[str, str] = {}
    for target in target_keys:
        by_key.setdefault(normalize(target), target)
    mapping = {name: by_key[normalize(name)] for name in model_names if normalize(name) in by_key}
    used = set(mapping.values())
    return Match(mapping=mapping,
                 missing=[name for name in model_names if name not in mapping],
                 unmatched=[key for key in target_keys if key not in used])


# Head (then neck) bones of the common rigs: Blender's metarig and Rigify (head; DEF-, ORG- and MCH-
# copies), Character Creator (CC_Base_Head), VRoid (J_Bip_C_Head), Mixamo (mixamorig:Head), Ready
# Player Me and Unreal (Head, head), Auto-Rig Pro (head.x). Compared without those prefixes and
# centre suffixes, in lower case.
HEAD_BONE_NAMES = ("head", "neck")
# A bone's prefix -> how much it is preferred (lower first): the bone an animator poses (no prefix,
# or a rig's own namespace), then a deform bone; Rigify's ORG- and MCH- bones follow constraints,
# so keys on them would do nothing.
_BONE_PREFIXES = ((re.compile(r"^(?:mixamorig\d*[:_]|cc_base_|j_bip_c_|bip\d*[ _])", re.IGNORECASE), 1),
                  (re.compile(r"^def[-_.]", re.IGNORECASE), 2))
_FOLLOWER_PREFIX = re.compile(r"^(?:org|mch)[-_.]", re.IGNORECASE)
_BONE_SUFFIX = re.compile(r"(?:[._](?:x|m|c)|_jnt|_bone)$", re.IGNORECASE)


def _bone_rank(name: str) -> tuple[str, int] | None:
    """(the bone's name without prefix and suffix in lower case, its preference), or None for a
    bone that follows others."""
    if _FOLLOWER_PREFIX.match(name):
        return None
    for pattern, rank in _BONE_PREFIXES:
        if pattern.match(name):
            return _BONE_SUFFIX.sub("", pattern.sub("", name)).lower(), rank
    return _BONE_SUFFIX.sub("", name).lower(), 0


def head_bone(bone_names: list[str]) -> str:
    """The bone of ``bone_names`` that carries the head pose: a head bone, else a neck bone, the
    one an animator poses first (`_BONE_PREFIXES`); '' when there is none."""
    for wanted in HEAD_BONE_NAMES:
        ranked = [(rank[1], index) for index, name in enumerate(bone_names)
                  if (rank := _bone_rank(name)) is not None and rank[0] == wanted]
        if ranked:
            return bone_names[min(ranked)[1]]
    return ""


# Eye bones, by the words of their names once a rig's namespace is off: one side word, and the
# other words spelling one of these stems. VRoid (J_Adj_L_FaceEye), Mixamo (mixamorig:LeftEye),
# Ready Player Me and Unity humanoids (LeftEye), Character Creator (CC_Base_L_Eye), Daz (lEye),
# MetaHuman (FACIAL_L_Eye), Auto-Rig Pro (c_eye.l), Blender's metarig (eye.L).
EYE_STEMS = ("eye", "eyeball", "faceeye")
_SIDE_WORDS = {"l": "left", "left": "left", "r": "right", "right": "right"}
# Namespaces in front of eye bone names -> preference (lower first), as `_BONE_PREFIXES`.
_EYE_PREFIXES = ((re.compile(r"^(?:mixamorig\d*[:_]|cc_base_|j_adj_|facial_|c_|bip\d*[ _])", re.IGNORECASE), 1),
                 (re.compile(r"^def[-_.]", re.IGNORECASE), 2))
_WORD = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")


def _eye_side(name: str) -> tuple[str, str, int] | None:
    """(side, the name without namespace in lower case, preference) of an eye bone's name, or None
    for any other bone (a lid, a target, a bone that follows constraints)."""
    if _FOLLOWER_PREFIX.match(name):
        return None
    rest, rank = name, 0
    for pattern, prefix_rank in _EYE_PREFIXES:
        if pattern.match(name):
            rest, rank = pattern.sub("", name), prefix_rank
            break
    words = [word.lower() for word in _WORD.findall(rest)]
    sides = [word for word in words if word in _SIDE_WORDS]
    if len(sides) != 1 or "".join(word for word in words if word not in _SIDE_WORDS) not in EYE_STEMS:
        return None
    return _SIDE_WORDS[sides[0]], rest.lower(), rank


def eye_bones(bone_names: list[str]) -> tuple[str, str]:
    """(left, right): the bones of ``bone_names`` that turn the eyes, each the one an animator poses
    first ('' for a side without one). A bone with a constraint-following copy (Rigify's ``eye.L``
    beside ``MCH-eye.L``) is a rig's eye target, not an eye, and is left out."""
    followed = {_FOLLOWER_PREFIX.sub("", name).lower() for name in bone_names if _FOLLOWER_PREFIX.match(name)}
    best: dict[str, tuple[int, int]] = {}
    for index, name in enumerate(bone_names):
        found = _eye_side(name)
        if found is not None and found[1] not in followed:
            best[found[0]] = min(best.get(found[0], (found[2], index)), (found[2], index))
    return tuple(bone_names[best[side][1]] if side in best else "" for side in ("left", "right"))
