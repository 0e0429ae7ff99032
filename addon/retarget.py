"""Match a mesh's shape-key names to the face model's (ARKit) names. No bpy.

Names compare case- and separator-insensitively (``eye_blink_left`` = ``EyeBlinkLeft``), a side
suffix ``_L``/``.R``/``L`` reads as ``Left``/``Right``, and a few names other rigs commonly use
are aliases (`ALIASES`).
"""

import re
from dataclasses import dataclass

__all__ = ["ALIASES", "normalize", "Match", "match_names"]

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
