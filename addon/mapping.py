"""Which shape keys of a rig the take's coefficients drive, and how. No bpy, no core.

A `Mapping` sends each driven shape key either a weighted sum of the model's (ARKit-named)
coefficient curves (``keys``: shape key -> {model name: weight}) or a viseme (``visemes``: shape
key -> viseme id, valued by `visemes.project`, the take's mouth projected onto the rig's visemes).
One name may drive several keys (CC4 splits ``mouthPucker`` into four lip quarters) and one key may
sum several names (a single ``mouthSmile`` key takes half of each smile curve). `evaluate` turns a
mapping and a take into per-frame key values in [0, 1]; `to_json`/`from_json` (and
`save_preset`/`load_preset`) keep a mapping the artist has edited; `format_terms`/`parse_terms`
write one key's drive as the panel shows it (``0.5*mouthSmileLeft + 0.5*mouthSmileRight``,
``jawOpen``, ``viseme:PP``) and `from_rows` reads the panel's rows back.

`build_mapping` makes a mapping for a mesh from a preset (`PRESETS`). A preset is a table from
normalised key names (`retarget.normalize`: case, separators and side suffix insensitive,
aliases resolved) to terms or viseme ids, for one convention:

``arkit``  Apple ARKit's 52 ``ARFaceAnchor.BlendShapeLocation`` names (``jawOpen``), also as
           Live Link Face / Unreal write them (``JawOpen``) and with ``_L``/``.R`` side suffixes.
``rpm``    Ready Player Me / Avaturn avatars: the ARKit 52 plus the Oculus (Meta) Lipsync visemes
           ``viseme_sil PP FF TH DD kk CH SS nn RR aa E I O U`` (visemes), and RPM's extra
           ``mouthSmile``, ``eyesClosed``, ``eyesLookUp``, ``eyesLookDown`` (half of each side's
           curve: weighted sums) and ``mouthOpen`` (an alias of jawOpen; jawOpen wins).
``cc4``    Character Creator 4 / iClone "Extended" facial profile (Reallusion): ``Brow_Drop_L``,
           ``Brow_Raise_Inner_L`` (both from browInnerUp), ``Eye_L_Look_L`` (eyeLookOutLeft),
           ``Cheek_Raise_L`` (cheekSquintLeft), ``Cheek_Puff_L/R`` (both from cheekPuff),
           ``Mouth_Pucker_Up/Down_L/R`` and ``Mouth_Funnel_Up/Down_L/R`` (four keys from one name),
           ``Mouth_Roll_In_Upper/Lower_L/R``, ``Mouth_Up_Upper_L``, ``Mouth_Down_Lower_L``, ``Jaw_Open``
           ...; and its eight lip visemes ``V_Open`` (aa), ``V_Explosive`` (PP), ``V_Dental_Lip`` (FF),
           ``V_Tight_O`` (U), ``V_Tight`` (SS), ``V_Wide`` (I), ``V_Affricate`` (CH), ``V_Lip_Open`` (DD),
           mapped onto the nearest Oculus ids.
``vrm``    VRM / VRoid Studio: VRM 0.x blend-shape proxies ``A I U E O`` (visemes aa I U E O),
           ``Blink`` (weighted sum: half of each eyeBlink), ``Blink_L/R``, ``Joy Angry Sorrow Fun
           Surprised`` (weighted sums); VRM 1.0 expressions ``aa ih ou ee oh``, ``blink blinkLeft
           blinkRight``, ``happy angry sad relaxed surprised`` (the same); the look expressions of
           either, ``LookUp LookDown LookLeft LookRight`` (weighted sums: up and down half of each
           eye's, left the left eye's out and the right eye's in, as a VRM looks to its own left at
           a positive yaw); and the VRoid mesh keys
           they bind to: ``Fcl_MTH_A/I/U/E/O`` (visemes), ``Fcl_EYE_Close`` (weighted sum),
           ``Fcl_EYE_Close_L/R``, ``Fcl_ALL_Joy/Angry/Sorrow/Fun/Surprised``, ``Fcl_BRW_Angry/
           Sorrow/Surprised`` and ``Fcl_EYE_Surprised`` (weighted sums, `_EMOTIONS`).
``faceit`` Faceit's (Blender add-on) ARKit expression set: the ARKit 52 names, as ``arkit``.
``valid``  Autodesk Character Generator heads, as the VALID avatar library ships them
           (``h_expressions.<shape>_h``): its visemes ``AE_AA AO_a UW_U Ax_E H_EST TD_I KG FV S SH_CH``
           (aa O U E I DD kk FF SS CH) and ``MPB_Up``/``MPB_Down`` (both PP: the upper and the lower
           lip), so its mouth moves by visemes (``MouthOpen`` stays undriven: the visemes open the
           jaw); ``LeyeClose`` (eyeBlinkLeft: ``L``/``R`` in front are the character's sides),
           ``LeyeOpen`` (eyeWide), ``Lsquint``, ``LsmileClose``, ``LmouthSad`` (mouthFrown),
           ``LlipUp``/``LlipDown`` (mouthUpperUp/mouthLowerDown), ``LlipCorner`` (mouthStretch),
           ``Ldisgust`` (noseSneer), ``Kiss`` (mouthPucker), ``Lblow`` (cheekPuff), ``Ljaw``,
           ``JawFront``, ``Chin`` (mouthShrugLower), ``LbrowUp`` (browInnerUp), ``LLbrowUp``
           (browOuterUp), ``LbrowDown`` and ``LLbrowDown`` (browDown). Shapes a driven key already
           shows (``LsmileOpen``, ``Lsad``, ``Lpityful``, ``Lnostril``, ``LlowLid``, ``Shout``...) stay
           undriven.

Whatever the preset, a key whose normalised name is a model name drives from that name
(``retarget.match_names``-style, one key per name: the one spelled like it, else the first), and a
both-sides key (``mouthSmile``, ``eyeBlink``, ``browDown`` ...: `_BOTH_SIDES`) takes half of each
side. Three rules keep a rig from moving twice for one curve:

- Visemes are driven only when the mesh has no key driven by jawOpen alone: a rig with both the
  ARKit mouth and visemes (Ready Player Me) keeps its visemes untouched, they would double the mouth.
- Weighted-sum keys (more than one term, or a weight other than 1) take only the names no other
  key already uses: single-name keys first, then sums with fewer terms, then in the preset's order.
  A sum left with no term is not driven (RPM's ``mouthSmile`` beside ``mouthSmileLeft/Right``;
  VRoid's ``Fcl_ALL_Surprised`` after ``Fcl_EYE_Surprised`` and ``Fcl_BRW_Surprised``).
- Terms on names the model lacks are dropped.
"""

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .retarget import normalize
from .visemes import VISEME_IDS

__all__ = [
    "build_character_mapping",
    "MappingError",
    "Mapping",
    "Preset",
    "PRESETS",
    "ARKIT_NAMES",
    "FORMAT",
    "to_json",
    "from_json",
    "driven_keys",
    "direct_keys",
    "shown_by_keys",
    "identity_mapping",
    "parse_terms",
    "format_terms",
    "from_rows",
    "detect_preset",
    "build_mapping",
    "evaluate",
    "save_preset",
    "load_preset",
]

FORMAT = 1

ARKIT_NAMES: tuple[str, ...] = (
    "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft", "browOuterUpRight", "cheekPuff",
    "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft", "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight",
    "eyeLookInLeft", "eyeLookInRight", "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight",
    "eyeSquintLeft", "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen", "jawRight",
    "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft", "mouthFrownRight", "mouthFunnel",
    "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthPressLeft", "mouthPressRight", "mouthPucker",
    "mouthRight", "mouthRollLower", "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft",
    "mouthSmileRight", "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight", "tongueOut",
)


class MappingError(ValueError):
    """A mapping (JSON or preset name) that cannot be used, with what is wrong with it."""


@dataclass(frozen=True)
class Mapping:
    """``keys``: shape key -> {model name: weight}; ``visemes``: shape key -> viseme id
    (`visemes.VISEME_IDS`); ``preset``: the preset it was built from (or ``"custom"``)."""

    keys: dict[str, dict[str, float]] = field(default_factory=dict)
    visemes: dict[str, str] = field(default_factory=dict)
    preset: str = "custom"


@dataclass(frozen=True)
class Preset:
    """One rig convention. ``keys``: normalised key name -> {model name: weight}; ``visemes``:
    normalised key name -> viseme id; ``arkit``: whether the convention includes the ARKit 52
    names as they are (they always match; this only counts them for `detect_preset`)."""

    name: str
    title: str
    keys: dict[str, dict[str, float]]
    visemes: dict[str, str]
    arkit: bool = False

    def own_names(self) -> set[str]:
        """The normalised key names of the convention (for `detect_preset`)."""
        names = set(self.keys) | set(self.visemes)
        return names | {normalize(n) for n in ARKIT_NAMES} if self.arkit else names


def _table(rules: dict[str, dict[str, float] | str]) -> tuple[dict[str, dict[str, float]], dict[str, str]]:
    """Raw key name -> terms or viseme id, split and normalised; two names that normalise alike
    must have the same rule."""
    keys: dict[str, dict[str, float]] = {}
    visemes: dict[str, str] = {}
    for raw, rule in rules.items():
        norm = normalize(raw)
        target = visemes if isinstance(rule, str) else keys
        if norm in keys or norm in visemes:
            if (visemes if norm in visemes else keys).get(norm) != rule:
                raise AssertionError(f"preset keys normalising to {norm!r} disagree ({raw!r})")
            continue
        if isinstance(rule, str) and rule not in VISEME_IDS:
            raise AssertionError(f"unknown viseme id {rule!r} for {raw!r}")
        target[norm] = dict(rule) if isinstance(rule, dict) else rule
    return keys, visemes


def _half(name: str) -> dict[str, float]:
    """Half of each side: ``mouthSmile`` -> {mouthSmileLeft: 0.5, mouthSmileRight: 0.5}."""
    return {f"{name}Left": 0.5, f"{name}Right": 0.5}


# Both-sides keys of any rig (the ARKit L/R pairs under their shared name).
_BOTH_SIDES: dict[str, dict[str, float] | str] = {
    **{name: _half(name) for name in ("browDown", "browOuterUp", "cheekSquint", "eyeBlink", "eyeSquint", "eyeWide",
                                      "eyeLookDown", "eyeLookUp", "mouthDimple", "mouthFrown", "mouthLowerDown",
                                      "mouthPress", "mouthSmile", "mouthStretch", "mouthUpperUp", "noseSneer")},
}

_OCULUS: dict[str, dict[str, float] | str] = {f"viseme_{v}": v for v in VISEME_IDS}
_RPM_EXTRA: dict[str, dict[str, float] | str] = {
    "mouthSmile": _half("mouthSmile"),
    "eyesClosed": _half("eyeBlink"),
    "eyesLookUp": _half("eyeLookUp"),
    "eyesLookDown": _half("eyeLookDown"),
    "mouthOpen": {"jawOpen": 1.0},
}


def _sides(pattern: str, arkit: str) -> dict[str, dict[str, float]]:
    """``Brow_Drop_{s}`` with ``browDown{S}`` -> the _L and _R rules."""
    return {pattern.format(s=s): {arkit.format(S=side): 1.0} for s, side in (("L", "Left"), ("R", "Right"))}


def _both(pattern: str, arkit: str) -> dict[str, dict[str, float]]:
    """``Cheek_Puff_{s}`` -> both sides from the one ARKit name ``cheekPuff``."""
    return {pattern.format(s=s): {arkit: 1.0} for s in ("L", "R")}


_CC4: dict[str, dict[str, float] | str] = {
    **_sides("Brow_Drop_{s}", "browDown{S}"),
    **_both("Brow_Raise_Inner_{s}", "browInnerUp"),
    **_sides("Brow_Raise_Outer_{s}", "browOuterUp{S}"),
    **_sides("Eye_Blink_{s}", "eyeBlink{S}"),
    **_sides("Eye_Squint_{s}", "eyeSquint{S}"),
    **_sides("Eye_Wide_{s}", "eyeWide{S}"),
    "Eye_L_Look_L": {"eyeLookOutLeft": 1.0}, "Eye_L_Look_R": {"eyeLookInLeft": 1.0},
    "Eye_R_Look_L": {"eyeLookInRight": 1.0}, "Eye_R_Look_R": {"eyeLookOutRight": 1.0},
    "Eye_L_Look_Up": {"eyeLookUpLeft": 1.0}, "Eye_R_Look_Up": {"eyeLookUpRight": 1.0},
    "Eye_L_Look_Down": {"eyeLookDownLeft": 1.0}, "Eye_R_Look_Down": {"eyeLookDownRight": 1.0},
    **_sides("Cheek_Raise_{s}", "cheekSquint{S}"),
    **_both("Cheek_Puff_{s}", "cheekPuff"),
    **_sides("Nose_Sneer_{s}", "noseSneer{S}"),
    **_sides("Mouth_Smile_{s}", "mouthSmile{S}"),
    **_sides("Mouth_Frown_{s}", "mouthFrown{S}"),
    **_sides("Mouth_Stretch_{s}", "mouthStretch{S}"),
    **_sides("Mouth_Dimple_{s}", "mouthDimple{S}"),
    **_sides("Mouth_Press_{s}", "mouthPress{S}"),
    **_both("Mouth_Pucker_Up_{s}", "mouthPucker"),
    **_both("Mouth_Pucker_Down_{s}", "mouthPucker"),
    **_both("Mouth_Funnel_Up_{s}", "mouthFunnel"),
    **_both("Mouth_Funnel_Down_{s}", "mouthFunnel"),
    **_both("Mouth_Roll_In_Upper_{s}", "mouthRollUpper"),
    **_both("Mouth_Roll_In_Lower_{s}", "mouthRollLower"),
    "Mouth_Shrug_Upper": {"mouthShrugUpper": 1.0}, "Mouth_Shrug_Lower": {"mouthShrugLower": 1.0},
    **_sides("Mouth_Up_Upper_{s}", "mouthUpperUp{S}"),
    **_sides("Mouth_Down_Lower_{s}", "mouthLowerDown{S}"),
    "Mouth_L": {"mouthLeft": 1.0}, "Mouth_R": {"mouthRight": 1.0},
    "Mouth_Close": {"mouthClose": 1.0},
    "Jaw_Open": {"jawOpen": 1.0}, "Jaw_Forward": {"jawForward": 1.0},
    "Jaw_L": {"jawLeft": 1.0}, "Jaw_R": {"jawRight": 1.0},
    "Tongue_Out": {"tongueOut": 1.0},
    "V_Open": "aa", "V_Explosive": "PP", "V_Dental_Lip": "FF", "V_Tight_O": "U",
    "V_Tight": "SS", "V_Wide": "I", "V_Affricate": "CH", "V_Lip_Open": "DD",
}

def _cg(shape: str) -> str:
    """An Autodesk Character Generator head's key name for ``shape`` (``h_expressions.<shape>_h``)."""
    return f"h_expressions.{shape}_h"


def _cg_sides(shape: str, arkit: str) -> dict[str, dict[str, float]]:
    """``L{shape}``/``R{shape}`` (the character's left and right) -> ``arkit`` with Left/Right."""
    return {_cg(f"{s}{shape}"): {arkit.format(S=side): 1.0} for s, side in (("L", "Left"), ("R", "Right"))}


_VALID: dict[str, dict[str, float] | str] = {
    **{_cg(shape): viseme for shape, viseme in (
        ("AE_AA", "aa"), ("AO_a", "O"), ("UW_U", "U"), ("Ax_E", "E"), ("H_EST", "I"), ("TD_I", "DD"), ("KG", "kk"),
        ("FV", "FF"), ("S", "SS"), ("SH_CH", "CH"), ("MPB_Up", "PP"), ("MPB_Down", "PP"))},
    **_cg_sides("eyeClose", "eyeBlink{S}"), **_cg_sides("eyeOpen", "eyeWide{S}"),
    **_cg_sides("squint", "eyeSquint{S}"), **_cg_sides("smileClose", "mouthSmile{S}"),
    **_cg_sides("mouthSad", "mouthFrown{S}"), **_cg_sides("lipUp", "mouthUpperUp{S}"),
    **_cg_sides("lipDown", "mouthLowerDown{S}"), **_cg_sides("lipCorner", "mouthStretch{S}"),
    **_cg_sides("disgust", "noseSneer{S}"), **_cg_sides("jaw", "jaw{S}"), **_cg_sides("browDown", "browDown{S}"),
    _cg("LLbrowUp"): {"browOuterUpLeft": 1.0}, _cg("RRbrowUp"): {"browOuterUpRight": 1.0},  # the outer brows
    _cg("LLbrowDown"): {"browDownLeft": 1.0}, _cg("RRbrowDown"): {"browDownRight": 1.0},
    _cg("LbrowUp"): {"browInnerUp": 1.0}, _cg("RbrowUp"): {"browInnerUp": 1.0},
    _cg("Lblow"): {"cheekPuff": 1.0}, _cg("Rblow"): {"cheekPuff": 1.0},
    _cg("Kiss"): {"mouthPucker": 1.0}, _cg("JawFront"): {"jawForward": 1.0}, _cg("Chin"): {"mouthShrugLower": 1.0},
}

# Emotions as weighted sums (each sums to 1, so the key reaches 1 only with every term at 1). VRM
# names: 0.x proxy / 1.0 expression / VRoid mesh key.
_EMOTIONS: dict[str, dict[str, float]] = {
    "Joy": {"mouthSmileLeft": 0.4, "mouthSmileRight": 0.4, "cheekSquintLeft": 0.1, "cheekSquintRight": 0.1},
    "Angry": {"browDownLeft": 0.35, "browDownRight": 0.35, "noseSneerLeft": 0.15, "noseSneerRight": 0.15},
    "Sorrow": {"browInnerUp": 0.4, "mouthFrownLeft": 0.3, "mouthFrownRight": 0.3},
    "Fun": {"mouthSmileLeft": 0.3, "mouthSmileRight": 0.3, "eyeSquintLeft": 0.2, "eyeSquintRight": 0.2},
    "Surprised": {"eyeWideLeft": 0.3, "eyeWideRight": 0.3, "browInnerUp": 0.2, "browOuterUpLeft": 0.1,
                  "browOuterUpRight": 0.1},
}
_VRM1_EMOTION = {"Joy": "happy", "Angry": "angry", "Sorrow": "sad", "Fun": "relaxed", "Surprised": "surprised"}
_VRM: dict[str, dict[str, float] | str] = {
    # Fcl part keys first: they take their names before the whole-face Fcl_ALL_ sums.
    "Fcl_BRW_Angry": {"browDownLeft": 0.5, "browDownRight": 0.5},
    "Fcl_BRW_Sorrow": {"browInnerUp": 1.0},
    "Fcl_BRW_Surprised": {"browInnerUp": 0.5, "browOuterUpLeft": 0.25, "browOuterUpRight": 0.25},
    "Fcl_EYE_Surprised": {"eyeWideLeft": 0.5, "eyeWideRight": 0.5},
    "Fcl_EYE_Close": _half("eyeBlink"), "Fcl_EYE_Close_L": {"eyeBlinkLeft": 1.0},
    "Fcl_EYE_Close_R": {"eyeBlinkRight": 1.0},
    "Blink": _half("eyeBlink"), "Blink_L": {"eyeBlinkLeft": 1.0}, "Blink_R": {"eyeBlinkRight": 1.0},
    "blinkLeft": {"eyeBlinkLeft": 1.0}, "blinkRight": {"eyeBlinkRight": 1.0},
    "LookUp": _half("eyeLookUp"), "LookDown": _half("eyeLookDown"),
    "LookLeft": {"eyeLookOutLeft": 0.5, "eyeLookInRight": 0.5},
    "LookRight": {"eyeLookInLeft": 0.5, "eyeLookOutRight": 0.5},
    **{emotion: terms for emotion, terms in _EMOTIONS.items()},
    **{_VRM1_EMOTION[emotion]: terms for emotion, terms in _EMOTIONS.items()},
    **{f"Fcl_ALL_{emotion}": terms for emotion, terms in _EMOTIONS.items()},
    "A": "aa", "I": "I", "U": "U", "E": "E", "O": "O",
    "aa": "aa", "ih": "I", "ou": "U", "ee": "E", "oh": "O",
    "Fcl_MTH_A": "aa", "Fcl_MTH_I": "I", "Fcl_MTH_U": "U", "Fcl_MTH_E": "E", "Fcl_MTH_O": "O",
}


def _preset(name: str, title: str, rules: dict[str, dict[str, float] | str], arkit: bool = False) -> Preset:
    keys, visemes = _table(rules)
    return Preset(name=name, title=title, keys=keys, visemes=visemes, arkit=arkit)


# In detection order: on a tie the first wins.
PRESETS: dict[str, Preset] = {p.name: p for p in (
    _preset("arkit", "ARKit 52 (Apple, Live Link Face)", {}, arkit=True),
    _preset("rpm", "Ready Player Me / Avaturn (ARKit 52 + Oculus visemes)", {**_OCULUS, **_RPM_EXTRA}, arkit=True),
    _preset("cc4", "Character Creator 4 / iClone Extended", _CC4),
    _preset("vrm", "VRM 0.x / 1.0 / VRoid", _VRM),
    _preset("faceit", "Faceit ARKit expressions", {}, arkit=True),
    _preset("valid", "VALID / Autodesk Character Generator", _VALID),
)}
_COMMON_KEYS, _ = _table(_BOTH_SIDES)


def detect_preset(key_names: list[str]) -> str:
    """The preset whose convention names the most of ``key_names`` (normalised); ``arkit`` when
    none names any, the earlier in `PRESETS` on a tie."""
    norms = [normalize(k) for k in key_names]
    best, best_count = "arkit", 0
    for preset in PRESETS.values():
        own = preset.own_names()
        count = sum(n in own for n in norms)
        if count > best_count:
            best, best_count = preset.name, count
    return best


def _squash(name: str) -> str:
    """A name without separators, lower case, side suffix kept as written (no aliases)."""
    return re.sub(r"[_.\- ]+", "", name).lower()


def build_mapping(key_names: list[str], model_names: list[str], preset: str | None = None) -> Mapping:
    """The mapping for a mesh with shape keys ``key_names`` (the reference key left out) and a
    model with coefficient names ``model_names``; ``preset`` None: `detect_preset`. See the module
    docstring for the rules. Raises `MappingError` for an unknown preset name."""
    name = detect_preset(key_names) if preset is None else preset
    if name not in PRESETS:
        raise MappingError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")
    table = PRESETS[name]
    model_by_norm: dict[str, str] = {}
    for model_name in model_names:
        model_by_norm.setdefault(normalize(model_name), model_name)
    known = set(model_names)
    order = {norm: i for i, norm in enumerate(table.keys)}

    direct: dict[str, list[str]] = {}  # model name -> keys that normalise to it
    dedicated: dict[str, dict[str, float]] = {}  # key -> {name: 1.0} from a preset rule
    sums: list[tuple[int, int, str, dict[str, float]]] = []  # (terms, preset order, key, terms)
    viseme_keys: dict[str, str] = {}
    for key in key_names:
        norm = normalize(key)
        if norm in table.visemes:
            if table.visemes[norm] != "sil":  # rest: never keyed
                viseme_keys[key] = table.visemes[norm]
            continue
        rule = table.keys.get(norm)
        if rule is None and norm in model_by_norm:
            direct.setdefault(model_by_norm[norm], []).append(key)
            continue
        if rule is None:
            rule = _COMMON_KEYS.get(norm)
        if rule is None:
            continue
        terms = {n: float(w) for n, w in rule.items() if n in known and w != 0}
        single = next(iter(terms)) if len(terms) == 1 and next(iter(terms.values())) == 1.0 else None
        if not terms:
            continue
        if single is not None and normalize(single) == norm:
            direct.setdefault(single, []).append(key)  # an ARKit name spelled another way
        elif single is not None:
            dedicated[key] = terms
        else:
            sums.append((len(terms), order.get(norm, len(order)), key, terms))

    keys: dict[str, dict[str, float]] = {}
    for model_name, candidates in direct.items():
        spelled = [k for k in candidates if _squash(k) == model_name.lower()]
        keys[(spelled or candidates)[0]] = {model_name: 1.0}
    keys.update(dedicated)
    used = {n for terms in keys.values() for n in terms}
    for _, _, key, terms in sorted(sums, key=lambda s: (s[0], s[1])):
        kept = {n: w for n, w in terms.items() if n not in used}
        if kept:
            keys[key] = kept
            used |= set(kept)
    keys = {k: keys[k] for k in key_names if k in keys}  # the mesh's order

    has_jaw = any(terms == {"jawOpen": 1.0} for terms in keys.values())
    return Mapping(keys=keys, visemes={} if has_jaw else viseme_keys, preset=name)


def driven_keys(mapping: Mapping) -> list[str]:
    """Every key the mapping drives: the weighted-sum keys, then the viseme keys."""
    return [*mapping.keys, *(k for k in mapping.visemes if k not in mapping.keys)]


def shown_by_keys(mapping: Mapping) -> frozenset[str]:
    """The model names that keys of ``mapping`` already show as curves of their own (an emotion
    key's smile, a CC4 rig's ``Mouth_Smile_L``), for `visemes.project` to leave out of the viseme
    rig's mouth. jawOpen and mouthClose stay in: a mesh with a jaw key drives no visemes
    (`build_mapping`), so a jaw key beside visemes sits on another mesh (the teeth) and the
    visemes must still open the mouth it belongs to."""
    return frozenset(name for terms in mapping.keys.values() for name in terms) - {"jawOpen", "mouthClose"}


def direct_keys(mapping: Mapping) -> dict[str, str]:
    """Model name -> the first key that carries that name alone (weight 1, no other term): the
    key a take's curve can be read back from."""
    out: dict[str, str] = {}
    for key, terms in mapping.keys.items():
        if len(terms) == 1:
            (name, weight), = terms.items()
            if weight == 1.0:
                out.setdefault(name, key)
    return out


def build_character_mapping(meshes_keys: list[list[str]], model_names: list[str],
                            preset: str | None = None) -> Mapping:
    """One mapping for a character's meshes: the preset (``None``: the one matching most of all
    their keys), applied mesh by mesh so each mesh's own spelling is driven (the head's ``jawOpen``
    and the teeth's ``JawOpen`` both follow jawOpen), the results merged."""
    chosen = preset or detect_preset([key for keys in meshes_keys for key in keys])
    per_mesh = [build_mapping(keys, model_names, chosen) for keys in meshes_keys]
    return Mapping(keys={k: v for m in per_mesh for k, v in m.keys.items()},
                   visemes={k: v for m in per_mesh for k, v in m.visemes.items()}, preset=chosen)


def identity_mapping(names: list[str]) -> Mapping:
    """Each model name drives the shape key of the same name (the FlowVQ head)."""
    return Mapping(keys={name: {name: 1.0} for name in names}, visemes={}, preset="identity")


_TERM = re.compile(r"^\s*(?:([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*\*\s*)?([^\s*+]+)\s*$")


def parse_terms(text: str) -> dict[str, float] | str:
    """One key's drive as written in the panel: ``""`` (not driven) -> {}, ``viseme:<id>`` -> the
    id, ``jawOpen`` or ``0.5*mouthSmileLeft + 0.5*mouthSmileRight`` -> {name: weight} (a name
    written twice adds up). Raises `MappingError` naming the part it cannot read."""
    text = text.strip()
    if not text:
        return {}
    if text.lower().startswith("viseme:"):
        viseme = text.split(":", 1)[1].strip()
        if viseme not in VISEME_IDS:
            raise MappingError(f"{viseme!r} is not a known viseme id ({' '.join(VISEME_IDS)})")
        return viseme
    terms: dict[str, float] = {}
    for part in re.split(r"(?<![eE])\+", text):  # not the + of an exponent (1e+20)
        match = _TERM.match(part)
        if match is None:
            raise MappingError(f"cannot read {part.strip()!r}: write name or weight*name, joined by +")
        weight = 1.0 if match.group(1) is None else float(match.group(1))
        if not math.isfinite(weight):
            raise MappingError(f"weight of {match.group(2)!r} is not a finite number: {match.group(1)}")
        terms[match.group(2)] = terms.get(match.group(2), 0.0) + weight
    return terms


def format_terms(mapping: Mapping, key: str) -> str:
    """How `parse_terms` reads ``key``'s drive back: ``viseme:<id>``, ``name`` (weight 1) and
    ``weight*name`` joined by `` + ``, or ``""`` for a key the mapping does not drive."""
    if key in mapping.keys:
        return " + ".join(name if weight == 1.0 else f"{weight!r}*{name}"
                          for name, weight in mapping.keys[key].items())
    if key in mapping.visemes:
        return f"viseme:{mapping.visemes[key]}"
    return ""


def from_rows(rows: list[tuple[str, str]], preset: str = "custom") -> Mapping:
    """A mapping from (shape key, `parse_terms` text) rows, as the panel lists them; empty rows
    drive nothing. Raises `MappingError` naming the row it cannot read."""
    keys: dict[str, dict[str, float]] = {}
    visemes: dict[str, str] = {}
    for key, text in rows:
        try:
            parsed = parse_terms(text)
        except MappingError as exc:
            raise MappingError(f"shape key {key!r}: {exc}") from None
        if isinstance(parsed, str):
            visemes[key] = parsed
            keys.pop(key, None)
        elif parsed:
            keys[key] = parsed
            visemes.pop(key, None)
    return Mapping(keys=keys, visemes=visemes, preset=preset)


def evaluate(
    mapping: Mapping, names: list[str], exp: np.ndarray, viseme_values: dict[str, np.ndarray] | None = None
) -> dict[str, np.ndarray]:
    """Each driven key's per-frame value, clipped to [0, 1]: the weighted sum of its names'
    curves (a name the take lacks counts 0), or its viseme's projection weight from
    ``viseme_values`` (viseme id -> `visemes.project`'s column). Raises `MappingError` when exp
    does not match names or a viseme key has no values.
    Shapes: exp (T, D), D = len(names); viseme_values id -> (T,) -> key -> (T,) float64.
    """
    exp = np.asarray(exp, dtype=np.float64)
    if exp.ndim != 2 or exp.shape[1] != len(names):
        raise MappingError(f"expression curves must have shape (T, {len(names)}), got {exp.shape}")
    index = {name: i for i, name in enumerate(names)}
    out: dict[str, np.ndarray] = {}
    for key, terms in mapping.keys.items():
        value = np.zeros(exp.shape[0])
        for name, weight in terms.items():
            if name in index:
                value += weight * exp[:, index[name]]
        out[key] = np.clip(value, 0.0, 1.0)
    for key, viseme in mapping.visemes.items():
        if key in out:
            continue
        found = (viseme_values or {}).get(viseme)
        if found is None:
            raise MappingError(f"shape key {key!r} is driven by viseme {viseme!r}, but no values for it were given")
        value = np.asarray(found, dtype=np.float64)
        if value.shape != (exp.shape[0],):
            raise MappingError(f"viseme {viseme!r} values must have shape ({exp.shape[0]},), got {value.shape}")
        out[key] = np.clip(value, 0.0, 1.0)
    return out


def to_json(mapping: Mapping) -> str:
    """The mapping as a JSON object (``format``, ``preset``, ``keys``, ``visemes``)."""
    return json.dumps({"format": FORMAT, "preset": mapping.preset, "keys": mapping.keys, "visemes": mapping.visemes},
                      indent=2, allow_nan=False)


def from_json(text: str) -> Mapping:
    """A mapping from `to_json`'s JSON; `MappingError` saying what is wrong: not JSON, not an
    object, a field of the wrong type, an unknown field or format, a weight that is not a finite
    number, an unknown viseme id, a key both summed and a viseme."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise MappingError(f"mapping is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise MappingError(f"mapping JSON must be an object, got {type(data).__name__}")
    unknown = sorted(set(data) - {"format", "preset", "keys", "visemes"})
    if unknown:
        raise MappingError(f"mapping has unknown fields: {', '.join(unknown)}")
    if type(data.get("format", FORMAT)) is not int or data.get("format", FORMAT) != FORMAT:
        raise MappingError(f"mapping format {data['format']!r} is not supported (expected {FORMAT})")
    preset = data.get("preset", "custom")
    if not isinstance(preset, str):
        raise MappingError(f"mapping 'preset' must be a string, got {type(preset).__name__}")
    raw_keys, raw_visemes = data.get("keys", {}), data.get("visemes", {})
    if not isinstance(raw_keys, dict):
        raise MappingError(f"mapping 'keys' must be an object, got {type(raw_keys).__name__}")
    if not isinstance(raw_visemes, dict):
        raise MappingError(f"mapping 'visemes' must be an object, got {type(raw_visemes).__name__}")
    keys: dict[str, dict[str, float]] = {}
    for key, terms in raw_keys.items():
        if not isinstance(terms, dict):
            raise MappingError(f"terms of shape key {key!r} must be an object of name: weight, got "
                               f"{type(terms).__name__}")
        for name, weight in terms.items():
            if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
                raise MappingError(f"weight of {name!r} for shape key {key!r} is not a finite number: {weight!r}")
        keys[key] = {name: float(weight) for name, weight in terms.items()}
    visemes: dict[str, str] = {}
    for key, viseme in raw_visemes.items():
        if viseme not in VISEME_IDS:
            raise MappingError(f"viseme of shape key {key!r} is {viseme!r}, not a known viseme id "
                               f"({' '.join(VISEME_IDS)})")
        if key in keys:
            raise MappingError(f"shape key {key!r} is both a weighted sum and viseme {viseme!r}")
        visemes[key] = viseme
    return Mapping(keys=keys, visemes=visemes, preset=preset)


def save_preset(mapping: Mapping, path: str | Path) -> None:
    """Write the mapping as a JSON file (UTF-8)."""
    Path(path).write_text(to_json(mapping) + "\n", encoding="utf-8")


def load_preset(path: str | Path) -> Mapping:
    """A mapping from a JSON file written by `save_preset` (or by hand); `MappingError` when the
    file cannot be read or its mapping is malformed (the message names the file)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(f"cannot read mapping file {path}: {exc}") from None
    try:
        return from_json(text)
    except MappingError as exc:
        raise MappingError(f"{path}: {exc}") from None
