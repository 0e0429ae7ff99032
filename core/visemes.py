"""Phones with exact timings -> frame-accurate lip-sync curves on the ARKit blendshapes.

Each SAMPA phone (the symbols espeak-ng writes for the MBROLA voices us1/us2/us3 and en1) belongs
to a viseme class with a target: weights on mouth blendshapes (bilabials close the lips,
labiodentals tuck the lower lip, rounded vowels funnel and pucker, open vowels drop the jaw...).
Diphthongs have two targets, at 30% and 75% of their span.

Coarticulation is dominance blending (Cohen & Massaro): every target k has, per channel, a
dominance α_k,c · exp(-((t - c_k) / w)²) that falls off more slowly before its centre than after it
(w_before > w_after: the lips anticipate the next sound), and its centre sits `LEAD` seconds
before the acoustic centre (the face moves before the sound). The value of a channel at time t is
the dominance-weighted mean of all targets; a target's dominance is strong on the channels it
names; elsewhere a consonant is weak (`UNNAMED`) and a vowel or silence holds rest with its full
dominance (the lips stay neutral through an /a/ unless a neighbour needs them). The /f v/ and /r/
then get their own lip shape whatever their neighbours do (`hold_lip_consonants`: real speakers'
lips are as close together there as at a /p b m/), and bilabial closure is made exact by
`seal_bilabials`: around the centre of every /p b m/ (from the led to the acoustic centre, and
always at the frame that holds it), ``mouthClose`` equals ``jawOpen``, which on the rig seals the lips
whatever the jaw does, and the channels that part the lips on their own (`LIP_PARTING`) are zero. The
corpus holds and seals again after it adds an emotion's style, so a surprised dropped jaw or a
disgusted raised upper lip never holds the lips apart through a /p b m/ or an /f v r/.

Curves are sampled at frame centres (t + 0.5) / fps, the instants `core.audio.align_to_frames`
summarises, so they line up with the audio features frame for frame.

The jaw targets are fitted to real speakers' lips (docs/real-speech.md, "The real speakers'
jaw"): the dominance blend of a line's aligned phones, with them and the jaw's own lead `JAW_LEAD`,
correlated best with the inner-lip gap FaceMesh tracks on the 12 real-speaker dev clips whose lines
are known, starting from and pulled toward the hand-written table before them. Real speakers barely
drop the jaw for /f v/, /r/, /u/ or a reduced vowel, and more for /i/ and /E/. `jaw_curve` is that
jaw alone: a line's text moves the takes' jaw with it (`core.coeff.text.line_lips`).
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from core.errors import FlowVQError

__all__ = [
    "VisemeError",
    "Viseme",
    "VISEMES",
    "PHONE_VISEMES",
    "MOUTH_CHANNELS",
    "BILABIALS",
    "LEAD",
    "LIP_PARTING",
    "VISEME_CLASSES",
    "UNKNOWN_VISEME",
    "JAW_LEAD",
    "frames_at",
    "viseme_of",
    "frame_visemes",
    "viseme_curves",
    "jaw_curve",
    "seal_bilabials",
    "LIP_CONSONANT_PHONES",
    "hold_lip_consonants",
]

LEAD = 0.04  # s: visible articulation leads the sound
JAW_LEAD = 0.03  # s: the jaw's lead, fitted with its targets to real speakers (module docstring)
WIDTH_BEFORE = 0.08  # s: anticipation (dominance width before a target's centre)
WIDTH_AFTER = 0.05  # s: carry-over (width after it)
UNNAMED = 0.3  # a consonant's dominance on the channels it does not name (a pull to rest)
BILABIALS = frozenset({"p", "b", "m", "p_h"})
# Channels that part the sealed lips of the built-in face by more than the closure threshold of
# `core.eval.metrics` at weight 0.5 (measured one by one on top of mouthClose = jawOpen).
LIP_PARTING = ("mouthFunnel", "mouthLowerDownLeft", "mouthLowerDownRight", "mouthShrugUpper",
               "mouthUpperUpLeft", "mouthUpperUpRight", "tongueOut")


class VisemeError(FlowVQError):
    """A phone symbol without a viseme, or a face model that lacks the mouth channels."""
    code = "viseme"


@dataclass(frozen=True)
class Viseme:
    """A mouth shape: blendshape weights and how strongly it holds them against its neighbours;
    ``holds_rest``: whether it holds the channels it does not name at rest just as strongly."""

    name: str
    targets: Mapping[str, float]
    dominance: float
    holds_rest: bool = False

    def channel_dominance(self, channel: str) -> float:
        """α for one channel."""
        return self.dominance if channel in self.targets or self.holds_rest else UNNAMED


VISEMES: dict[str, Viseme] = {v.name: v for v in (
    Viseme("rest", {}, 1.5, holds_rest=True),
    Viseme("bilabial", {"mouthPressLeft": 0.35, "mouthPressRight": 0.35, "mouthFunnel": 0.0,
                        "mouthPucker": 0.0}, 12.0),
    Viseme("labiodental", {"jawOpen": 0.0, "mouthRollLower": 0.65, "mouthUpperUpLeft": 0.2,
                           "mouthUpperUpRight": 0.2, "mouthFunnel": 0.0}, 7.0),
    Viseme("dental", {"jawOpen": 0.04, "tongueOut": 0.15}, 2.0),
    Viseme("alveolar", {"jawOpen": 0.1}, 1.0),
    Viseme("sibilant", {"jawOpen": 0.06, "mouthStretchLeft": 0.15, "mouthStretchRight": 0.15}, 2.0),
    Viseme("postalveolar", {"jawOpen": 0.05, "mouthFunnel": 0.4, "mouthPucker": 0.25}, 3.0),
    Viseme("velar", {"jawOpen": 0.21}, 1.0),
    Viseme("glottal", {"jawOpen": 0.19}, 0.3),
    Viseme("approximant_r", {"jawOpen": 0.0, "mouthPucker": 0.3, "mouthFunnel": 0.2}, 2.0),
    Viseme("approximant_w", {"jawOpen": 0.02, "mouthPucker": 0.7, "mouthFunnel": 0.3}, 4.0),
    Viseme("open", {"jawOpen": 0.55, "mouthFunnel": 0.0, "mouthPucker": 0.0}, 2.0, holds_rest=True),
    Viseme("open_spread", {"jawOpen": 0.43, "mouthStretchLeft": 0.25, "mouthStretchRight": 0.25}, 2.0, holds_rest=True),
    Viseme("mid", {"jawOpen": 0.3}, 1.5, holds_rest=True),
    Viseme("mid_spread", {"jawOpen": 0.48, "mouthStretchLeft": 0.18, "mouthStretchRight": 0.18}, 1.5, holds_rest=True),
    Viseme("schwa", {"jawOpen": 0.13}, 0.8, holds_rest=True),
    Viseme("close_spread", {"jawOpen": 0.22, "mouthStretchLeft": 0.3, "mouthStretchRight": 0.3,
                            "mouthSmileLeft": 0.1, "mouthSmileRight": 0.1}, 2.0, holds_rest=True),
    Viseme("close_rounded", {"jawOpen": 0.0, "mouthFunnel": 0.45, "mouthPucker": 0.6}, 3.0, holds_rest=True),
    Viseme("mid_rounded", {"jawOpen": 0.3, "mouthFunnel": 0.5, "mouthPucker": 0.25}, 2.5, holds_rest=True),
    Viseme("open_rounded", {"jawOpen": 0.27, "mouthFunnel": 0.35}, 2.0, holds_rest=True),
    Viseme("rhotic_vowel", {"jawOpen": 0.22, "mouthFunnel": 0.25, "mouthPucker": 0.2}, 1.5, holds_rest=True),
)}

# One viseme, or two for a diphthong (onset, offset). SAMPA as espeak-ng writes it for MBROLA:
# US voices (us1-us3, with aspirated p_h t_h k_h, flap 4, syllabic r= l=) and British en1
# (length marks, centring diphthongs, dark l 5).
PHONE_VISEMES: dict[str, tuple[str, ...]] = {
    "_": ("rest",),
    **{p: ("bilabial",) for p in BILABIALS},
    "f": ("labiodental",), "v": ("labiodental",),
    "T": ("dental",), "D": ("dental",),
    **{p: ("alveolar",) for p in ("t", "d", "n", "l", "t_h", "4", "5", "l=")},
    "s": ("sibilant",), "z": ("sibilant",),
    **{p: ("postalveolar",) for p in ("S", "Z", "tS", "dZ")},
    **{p: ("velar",) for p in ("k", "g", "N", "k_h")},
    "h": ("glottal",),
    "r": ("approximant_r",), "j": ("close_spread",), "w": ("approximant_w",),
    "A": ("open",), "A:": ("open",), "V": ("open",), "Q": ("open_rounded",),
    "{": ("open_spread",),
    "E": ("mid_spread",), "e": ("mid_spread",),
    "@": ("schwa",), "3:": ("rhotic_vowel",), "r=": ("rhotic_vowel",),
    "i": ("close_spread",), "i:": ("close_spread",), "I": ("close_spread",),
    "u": ("close_rounded",), "u:": ("close_rounded",), "U": ("close_rounded",),
    "O": ("open_rounded",), "O:": ("mid_rounded",), "O2": ("open_rounded",),
    "EI": ("mid_spread", "close_spread"), "eI": ("mid_spread", "close_spread"),
    "AI": ("open", "close_spread"), "aI": ("open", "close_spread"),
    "OI": ("mid_rounded", "close_spread"), "Or": ("mid_rounded", "approximant_r"),
    "aU": ("open", "close_rounded"), "@U": ("schwa", "close_rounded"),
    "I@": ("close_spread", "schwa"), "e@": ("mid_spread", "schwa"), "U@": ("close_rounded", "schwa"),
    # The other languages' SAMPA written by the foreign MBROLA voices reading English
    # (core.corpus.speech.FOREIGN_VOICES): German, French, Dutch, Afrikaans, Polish.
    "a": ("open",), "a:": ("open",), "&": ("open_spread",), "e:": ("mid_spread",),
    "6": ("schwa",), "$": ("schwa",), "o": ("mid_rounded",), "o:": ("mid_rounded",),
    "2": ("mid_rounded",), "9": ("mid_rounded",),
    "OY": ("mid_rounded", "close_spread"), "Ei": ("mid_spread", "close_spread"), "Au": ("open", "close_rounded"),
    "R": ("approximant_r",), "L": ("alveolar",), "dj": ("alveolar",), "tj": ("alveolar",),
    "J": ("velar",), "x": ("velar",),
}
# The phones of the visemes whose lips real speakers bring nearly together, as close as at /p b m/
# or closer (the median of their FaceMesh-tracked inner-lip gap at an aligned /f v/ lies 4-6% up the
# clip's range, /r/ 9-16%, /p b m/ 9-10%; docs/real-speech.md): a take known to hold one keeps its
# shape (`hold_lip_consonants`).
LIP_CONSONANT_PHONES = frozenset(p for p, v in PHONE_VISEMES.items() if v in (("labiodental",), ("approximant_r",)))
# The per-frame phone input of the flows (`frame_visemes`): class 0 is "not known" (no text, nothing
# heard, or a frame no phone covers), then every viseme in table order.
VISEME_CLASSES: tuple[str, ...] = ("unknown", *VISEMES)
UNKNOWN_VISEME = 0
MOUTH_CHANNELS: tuple[str, ...] = tuple(sorted({"mouthClose"} | {c for v in VISEMES.values() for c in v.targets}))
_DIPHTHONG_POINTS = (0.3, 0.75)


def frames_at(times: np.ndarray, fps: float) -> np.ndarray:
    """The frame whose span [t / fps, (t + 1) / fps) holds each time: the frame whose centre is
    nearest, the later one on a tie. The corpus seals the lips on this frame and the evaluation
    measures closure on it, so the two agree on every phone. Shapes: times (n,) s -> (n,) int."""
    return np.floor(np.asarray(times, dtype=np.float64) * fps + 1e-9).astype(int)


def viseme_of(symbol: str) -> tuple[Viseme, ...]:
    """The viseme(s) of a phone symbol; `VisemeError` for a symbol this table lacks."""
    names = PHONE_VISEMES.get(symbol)
    if names is None:
        raise VisemeError(f"no viseme for phone {symbol!r}; known phones: {' '.join(sorted(PHONE_VISEMES))}")
    return tuple(VISEMES[name] for name in names)


def frame_visemes(phones: Sequence[tuple[str, float, float]], fps: float, frames: int) -> np.ndarray:
    """The viseme class (index in `VISEME_CLASSES`) of each frame centre (t + 0.5) / fps: the class of
    the phone whose [start, end) holds it (a diphthong's onset viseme in its first half, its offset
    in the second), `UNKNOWN_VISEME` where no phone does. `VisemeError` for a symbol without a
    viseme. Shapes: -> (frames,) uint8."""
    classes = np.full(frames, UNKNOWN_VISEME, np.uint8)
    times = (np.arange(frames) + 0.5) / fps
    for symbol, start, end in phones:
        inside = (times >= start) & (times < end)
        if not inside.any():
            continue
        visemes = viseme_of(symbol)
        later = times >= (start + end) / 2
        for half, viseme in zip((~later, later), (visemes[0], visemes[-1])):
            classes[inside & half] = VISEME_CLASSES.index(viseme.name)
    return classes


@dataclass(frozen=True)
class _Targets:
    """All viseme targets of an utterance. Shapes: centre (K,), value (K, C), dominance (K, C)."""

    centre: np.ndarray
    value: np.ndarray
    dominance: np.ndarray


def _targets(phones: Sequence[tuple[str, float, float]], channels: Sequence[str], lead: float) -> _Targets:
    """One row per viseme target on ``channels``: its centre (led by ``lead`` s), channel values and
    dominances."""
    centres, values, dominances = [], [], []
    for symbol, start, end in phones:
        visemes = viseme_of(symbol)
        points = (0.5,) if len(visemes) == 1 else _DIPHTHONG_POINTS
        for viseme, point in zip(visemes, points):
            centres.append(start + point * (end - start) - lead)
            values.append([viseme.targets.get(c, 0.0) for c in channels])
            dominances.append([viseme.channel_dominance(c) for c in channels])
    return _Targets(np.asarray(centres), np.asarray(values), np.asarray(dominances))


def _blend(targets: _Targets, times: np.ndarray) -> np.ndarray:
    """Dominance-weighted mean of the targets at each time. Shapes: times (T,) -> (T, C)."""
    offset = times[:, None] - targets.centre[None, :]  # (T, K): > 0 after a target's centre
    width = np.where(offset < 0, WIDTH_BEFORE, WIDTH_AFTER)
    weight = np.exp(-((offset / width) ** 2))[:, :, None] * targets.dominance[None]  # (T, K, C)
    return (weight * targets.value[None]).sum(axis=1) / weight.sum(axis=1)


def viseme_curves(
    phones: Sequence[tuple[str, float, float]], names: Sequence[str], fps: float, frames: int
) -> np.ndarray:
    """Lip-sync curves for ``frames`` video frames at ``fps`` from (symbol, start s, end s) phones.

    Only the mouth channels (`MOUTH_CHANNELS`) are set, each looked up by name in ``names``, and
    the bilabials are sealed (`seal_bilabials`); every other column is zero.
    Shapes: -> (frames, len(names)) float32 in [0, 1].
    """
    missing = [c for c in (*MOUTH_CHANNELS, *LIP_PARTING) if c not in names]
    if missing:
        raise VisemeError(f"the face model lacks the mouth channels {', '.join(missing)}")
    curves = np.zeros((frames, len(names)), np.float32)
    if not phones:
        return curves
    times = (np.arange(frames) + 0.5) / fps
    curves[:, [list(names).index(c) for c in MOUTH_CHANNELS]] = np.clip(
        _blend(_targets(phones, MOUTH_CHANNELS, LEAD), times), 0.0, 1.0)
    curves[:, list(names).index("jawOpen")] = jaw_curve(phones, fps, frames)
    hold_lip_consonants(curves, names, phones, fps)
    seal_bilabials(curves, names, phones, fps)
    return curves


def jaw_curve(phones: Sequence[tuple[str, float, float]], fps: float, frames: int) -> np.ndarray:
    """The jawOpen of ``frames`` frames at ``fps`` from (symbol, start s, end s) phones: the visemes'
    jaw targets blended as every mouth channel is, led by `JAW_LEAD`; what `viseme_curves` puts in
    its jawOpen column. Unsealed: `seal_bilabials` closes the lips at /p b m/ on any jaw.
    Shapes: -> (frames,) float32 in [0, 1]; zeros without phones."""
    if not phones:
        return np.zeros(frames, np.float32)
    times = (np.arange(frames) + 0.5) / fps
    return np.clip(_blend(_targets(phones, ("jawOpen",), JAW_LEAD), times)[:, 0], 0.0, 1.0).astype(np.float32)


def _held_spans(
    frames: int, phones: Sequence[tuple[str, float, float]], fps: float, to_end: bool, symbols: frozenset[str]
) -> list[tuple[str, np.ndarray]]:
    """Each phone of ``symbols`` with the frames its lip shape is held on: from a quarter of its
    length before its led centre to its acoustic centre (``to_end``: to its end, for recognised or
    aligned phones whose times may be a frame off) and always the acoustic centre's frame
    (`frames_at`; the last frame for a centre past the end). Shapes: -> [(symbol, (frames,) bool)]."""
    if not frames:
        return []
    times = (np.arange(frames) + 0.5) / fps
    spans = []
    for symbol, start, end in phones:
        if symbol in symbols:
            centre, quarter = (start + end) / 2, (end - start) / 4
            inside = (times >= centre - LEAD - quarter) & (times <= (end if to_end else centre))
            inside[min(int(frames_at(np.array([centre]), fps)[0]), frames - 1)] = True
            spans.append((symbol, inside))
    return spans


def _bring_lips_together(curves: np.ndarray, columns: list[str], inside: np.ndarray) -> None:
    """mouthClose = jawOpen (the rig's lips meet on any jaw) and every `LIP_PARTING` channel 0 on the
    ``inside`` frames. In place. Shapes: curves (T, len(columns)), inside (T,) bool."""
    curves[np.ix_(inside, [columns.index(c) for c in LIP_PARTING])] = 0.0
    curves[inside, columns.index("mouthClose")] = curves[inside, columns.index("jawOpen")]


def seal_bilabials(
    curves: np.ndarray, names: Sequence[str], phones: Sequence[tuple[str, float, float]], fps: float,
    to_end: bool = False,
) -> None:
    """Seal the lips around each /p b m/ (`_bring_lips_together` on its held frames, `_held_spans`).
    In place. Shapes: curves (T, len(names)) with frame centres at (t + 0.5) / fps.
    """
    columns = list(names)
    for _, inside in _held_spans(len(curves), phones, fps, to_end, BILABIALS):
        _bring_lips_together(curves, columns, inside)


def hold_lip_consonants(
    curves: np.ndarray, names: Sequence[str], phones: Sequence[tuple[str, float, float]], fps: float,
    to_end: bool = False,
) -> None:
    """Give each /f v/ and /r/ (`LIP_CONSONANT_PHONES`) its viseme's own lip shape on its held frames
    (`_held_spans`), whatever its neighbours and the jaw do: the lips brought together as a seal
    brings them (`_bring_lips_together`), then the viseme's lip targets (/f v/: the lower lip rolled
    in under a slightly raised upper lip, a 1.4 mm gap on the built-in face; /r/: a light pucker,
    1.6 mm). In place. Shapes: curves (T, len(names)) with frame centres at (t + 0.5) / fps.
    """
    columns = list(names)
    for symbol, inside in _held_spans(len(curves), phones, fps, to_end, LIP_CONSONANT_PHONES):
        _bring_lips_together(curves, columns, inside)
        for channel, value in viseme_of(symbol)[0].targets.items():
            if channel != "jawOpen":
                curves[inside, columns.index(channel)] = value
