"""`addon/mapping.py` without Blender: presets on real rigs' key names, weighted sums, one name on
several keys, visemes only on rigs without an ARKit mouth, JSON round trips and malformed JSON."""

import json

import numpy as np
import pytest

from .pure import pure_module

mapping = pure_module("mapping")
MappingError = mapping.MappingError

ARKIT = list(mapping.ARKIT_NAMES)
OCULUS = ["sil", "PP", "FF", "TH", "DD", "kk", "CH", "SS", "nn", "RR", "aa", "E", "I", "O", "U"]

# Key lists as the rigs carry them (written out here, not taken from the module's tables).
RPM_KEYS = ARKIT + [f"viseme_{v}" for v in OCULUS] + ["mouthOpen", "mouthSmile"]
LIVE_LINK_KEYS = [name[0].upper() + name[1:] for name in ARKIT]  # JawOpen, EyeBlinkLeft ...
CC4_KEYS = [
    "Brow_Drop_L", "Brow_Drop_R", "Brow_Raise_Inner_L", "Brow_Raise_Inner_R", "Brow_Raise_Outer_L",
    "Brow_Raise_Outer_R", "Eye_Blink_L", "Eye_Blink_R", "Eye_Squint_L", "Eye_Squint_R", "Eye_Wide_L", "Eye_Wide_R",
    "Eye_L_Look_L", "Eye_L_Look_R", "Eye_L_Look_Up", "Eye_L_Look_Down", "Eye_R_Look_L", "Eye_R_Look_R",
    "Eye_R_Look_Up", "Eye_R_Look_Down", "Cheek_Raise_L", "Cheek_Raise_R", "Cheek_Puff_L", "Cheek_Puff_R",
    "Nose_Sneer_L", "Nose_Sneer_R", "Mouth_Smile_L", "Mouth_Smile_R", "Mouth_Frown_L", "Mouth_Frown_R",
    "Mouth_Stretch_L", "Mouth_Stretch_R", "Mouth_Dimple_L", "Mouth_Dimple_R", "Mouth_Press_L", "Mouth_Press_R",
    "Mouth_Pucker_Up_L", "Mouth_Pucker_Up_R", "Mouth_Pucker_Down_L", "Mouth_Pucker_Down_R", "Mouth_Funnel_Up_L",
    "Mouth_Funnel_Up_R", "Mouth_Funnel_Down_L", "Mouth_Funnel_Down_R", "Mouth_Roll_In_Upper_L",
    "Mouth_Roll_In_Upper_R", "Mouth_Roll_In_Lower_L", "Mouth_Roll_In_Lower_R", "Mouth_Shrug_Upper",
    "Mouth_Shrug_Lower", "Mouth_Up_Upper_L", "Mouth_Up_Upper_R", "Mouth_Down_Lower_L", "Mouth_Down_Lower_R",
    "Mouth_L", "Mouth_R", "Mouth_Close", "Jaw_Open", "Jaw_Forward", "Jaw_L", "Jaw_R", "Tongue_Out",
    "V_Open", "V_Explosive", "V_Dental_Lip", "V_Tight_O", "V_Tight", "V_Wide", "V_Affricate", "V_Lip_Open",
]
VROID_KEYS = [
    "Fcl_ALL_Neutral", "Fcl_ALL_Angry", "Fcl_ALL_Fun", "Fcl_ALL_Joy", "Fcl_ALL_Sorrow", "Fcl_ALL_Surprised",
    "Fcl_BRW_Angry", "Fcl_BRW_Fun", "Fcl_BRW_Joy", "Fcl_BRW_Sorrow", "Fcl_BRW_Surprised", "Fcl_EYE_Natural",
    "Fcl_EYE_Angry", "Fcl_EYE_Close", "Fcl_EYE_Close_R", "Fcl_EYE_Close_L", "Fcl_EYE_Surprised",
    "Fcl_MTH_Close", "Fcl_MTH_Up", "Fcl_MTH_A", "Fcl_MTH_I", "Fcl_MTH_U", "Fcl_MTH_E", "Fcl_MTH_O",
    "Fcl_HA_Hide",
]
VRM1_KEYS = ["aa", "ih", "ou", "ee", "oh", "blink", "blinkLeft", "blinkRight", "happy", "angry", "sad", "relaxed",
             "surprised", "neutral"]
# An Autodesk Character Generator head of the VALID avatar library (c-frame/valid-avatars-glb, every
# avatar's H_DDS_HighRes mesh), in the file's order.
VALID_KEYS = ["h_expressions." + shape + "_h" for shape in (
    "AE_AA AO_a Ax_E TD_I UH_OO UW_U H_EST FV S SH_CH MPB_Up MPB_Down KG RlipUp LlipUp RlipDown LlipDown RlipSide "
    "LlipSide RlipCorner LlipCorner JawCompress Rjaw Ljaw JawFront Chew MouthOpen Shout RsmileClose LsmileClose "
    "RsmileOpen LsmileOpen RmouthSad LmouthSad Rdisgust Ldisgust Kiss Rblow Lblow Chin Glotis RneckTension "
    "LneckTension Rnostril Lnostril ReyeClose LeyeClose ReyeOpen LeyeOpen Rsquint Lsquint RlowLid LlowLid Rsad Lsad "
    "Rpityful Lpityful RRbrowUp RbrowUp LbrowUp LLbrowUp RRbrowDown RbrowDown LbrowDown LLbrowDown").split()]
RIGS = {"arkit": LIVE_LINK_KEYS, "rpm": RPM_KEYS, "cc4": CC4_KEYS, "vrm": VROID_KEYS, "faceit": ARKIT,
        "valid": VALID_KEYS}


def curves(seed: int, frames: int = 40) -> np.ndarray:
    """Random coefficient curves in [0, 1] over the ARKit names. Shapes: -> (frames, 52)."""
    return np.random.default_rng(seed).uniform(0.0, 1.0, (frames, len(ARKIT)))


def column(exp: np.ndarray, name: str) -> np.ndarray:
    return exp[:, ARKIT.index(name)]


def test_arkit_names_are_the_face_models():
    face = pytest.importorskip("core.face")
    assert sorted(mapping.ARKIT_NAMES) == sorted(face.builtin().names)


@pytest.mark.parametrize("preset", sorted(mapping.PRESETS))
def test_every_preset_applied_to_its_rig_round_trips_through_json(preset, tmp_path):
    built = mapping.build_mapping(RIGS[preset], ARKIT, preset)
    assert built.preset == preset and mapping.driven_keys(built)
    assert set(mapping.driven_keys(built)) <= set(RIGS[preset])
    assert mapping.from_json(mapping.to_json(built)) == built
    mapping.save_preset(built, tmp_path / "rig.json")
    assert mapping.load_preset(tmp_path / "rig.json") == built
    json.loads((tmp_path / "rig.json").read_text())  # plain JSON a person can edit


@pytest.mark.parametrize("keys, preset", [
    (CC4_KEYS, "cc4"), (CC4_KEYS[:-8], "cc4"), (VROID_KEYS, "vrm"), (VRM1_KEYS, "vrm"),
    (["A", "I", "U", "E", "O", "Blink", "Blink_L", "Blink_R", "Joy", "Angry"], "vrm"), (RPM_KEYS, "rpm"),
    (LIVE_LINK_KEYS, "arkit"), (ARKIT, "arkit"), (["Basis.001", "Key 1"], "arkit"), ([], "arkit"),
    (VALID_KEYS, "valid"),
])
def test_detect_preset_picks_the_convention_of_the_key_names(keys, preset):
    assert mapping.detect_preset(keys) == preset
    assert mapping.build_mapping(keys, ARKIT).preset == preset


def test_live_link_style_names_drive_their_arkit_curves():
    built = mapping.build_mapping(LIVE_LINK_KEYS, ARKIT)
    assert built.keys == {key: {name: 1.0} for key, name in zip(LIVE_LINK_KEYS, ARKIT)}
    assert built.visemes == {}


def test_a_weighted_sum_key_is_the_weighted_sum_of_its_curves():
    exp = curves(0)
    terms = {"mouthSmileLeft": 0.5, "mouthSmileRight": 0.5, "cheekSquintLeft": 0.25}
    values = mapping.evaluate(mapping.Mapping(keys={"Joy": terms}), ARKIT, exp)
    expected = sum(weight * column(exp, name) for name, weight in terms.items())
    np.testing.assert_allclose(values["Joy"], np.clip(expected, 0.0, 1.0))
    assert (expected > 1.0).any()  # the clip was exercised


def test_vroid_joy_sums_both_smiles_and_a_single_smile_key_takes_half_of_each():
    exp = curves(1)
    vroid = mapping.build_mapping(VROID_KEYS, ARKIT)
    joy = vroid.keys["Fcl_ALL_Joy"]
    assert joy["mouthSmileLeft"] == joy["mouthSmileRight"] > 0
    values = mapping.evaluate(vroid, ARKIT, exp, {v: np.zeros(len(exp)) for v in ["aa", "I", "U", "E", "O"]})
    np.testing.assert_allclose(values["Fcl_ALL_Joy"],
                               np.clip(sum(w * column(exp, n) for n, w in joy.items()), 0, 1))

    single = mapping.build_mapping(["mouthSmile", "jawOpen"], ARKIT)
    assert single.keys["mouthSmile"] == {"mouthSmileLeft": 0.5, "mouthSmileRight": 0.5}
    values = mapping.evaluate(single, ARKIT, exp)
    np.testing.assert_allclose(values["mouthSmile"], 0.5 * column(exp, "mouthSmileLeft")
                               + 0.5 * column(exp, "mouthSmileRight"))


def test_one_name_drives_several_keys():
    exp = curves(2)
    built = mapping.build_mapping(CC4_KEYS, ARKIT)
    values = mapping.evaluate(built, ARKIT, exp)
    for key in ("Mouth_Pucker_Up_L", "Mouth_Pucker_Up_R", "Mouth_Pucker_Down_L", "Mouth_Pucker_Down_R"):
        np.testing.assert_array_equal(values[key], column(exp, "mouthPucker"))
    for key in ("Brow_Raise_Inner_L", "Brow_Raise_Inner_R"):
        np.testing.assert_array_equal(values[key], column(exp, "browInnerUp"))
    np.testing.assert_array_equal(values["Eye_L_Look_L"], column(exp, "eyeLookOutLeft"))  # outwards
    np.testing.assert_array_equal(values["Eye_R_Look_L"], column(exp, "eyeLookInRight"))
    np.testing.assert_array_equal(values["Jaw_Open"], column(exp, "jawOpen"))


def test_a_rig_with_the_arkit_mouth_and_visemes_keeps_its_visemes_undriven():
    built = mapping.build_mapping(RPM_KEYS, ARKIT)
    driven = mapping.driven_keys(built)
    assert built.visemes == {}
    assert not [key for key in driven if key.startswith("viseme_")]
    assert built.keys["jawOpen"] == {"jawOpen": 1.0}
    assert "mouthOpen" not in driven and "mouthSmile" not in driven  # they would double jaw and smile
    assert set(driven) == set(ARKIT)
    cc4 = mapping.build_mapping(CC4_KEYS, ARKIT)
    assert cc4.visemes == {} and not [key for key in mapping.driven_keys(cc4) if key.startswith("V_")]


def test_a_rig_without_the_arkit_mouth_drives_its_visemes():
    vroid = mapping.build_mapping(VROID_KEYS, ARKIT)
    assert vroid.visemes == {"Fcl_MTH_A": "aa", "Fcl_MTH_I": "I", "Fcl_MTH_U": "U", "Fcl_MTH_E": "E",
                             "Fcl_MTH_O": "O"}
    vrm1 = mapping.build_mapping(VRM1_KEYS, ARKIT)
    assert vrm1.visemes == {"aa": "aa", "ih": "I", "ou": "U", "ee": "E", "oh": "O"}
    cc4 = mapping.build_mapping([k for k in CC4_KEYS if k != "Jaw_Open"], ARKIT)
    assert cc4.visemes == {"V_Open": "aa", "V_Explosive": "PP", "V_Dental_Lip": "FF", "V_Tight_O": "U",
                           "V_Tight": "SS", "V_Wide": "I", "V_Affricate": "CH", "V_Lip_Open": "DD"}
    rpm = mapping.build_mapping([f"viseme_{v}" for v in OCULUS] + ["eyeBlinkLeft"], ARKIT)
    assert rpm.preset == "rpm"
    assert rpm.visemes == {f"viseme_{v}": v for v in OCULUS if v != "sil"}  # rest is not keyed
    # A VRoid model with "perfect sync" ARKit keys added: its mouth is the ARKit one.
    assert mapping.build_mapping(VROID_KEYS + ARKIT, ARKIT, "vrm").visemes == {}


def test_viseme_keys_take_their_visemes_values_clipped():
    built = mapping.build_mapping(VROID_KEYS, ARKIT)
    exp = curves(3, frames=5)
    ramp = np.linspace(-0.5, 1.5, 5)
    scaled = {v: ramp * (i + 1) / 5 for i, v in enumerate(["aa", "I", "U", "E", "O"])}
    values = mapping.evaluate(built, ARKIT, exp, scaled)
    np.testing.assert_allclose(values["Fcl_MTH_A"], np.clip(ramp / 5, 0, 1))
    np.testing.assert_allclose(values["Fcl_MTH_O"], np.clip(ramp, 0, 1))
    with pytest.raises(MappingError, match="'Fcl_MTH_A' is driven by viseme 'aa', but no values"):
        mapping.evaluate(built, ARKIT, exp)
    with pytest.raises(MappingError, match="'Fcl_MTH_O' is driven by viseme 'O', but no values"):
        mapping.evaluate(built, ARKIT, exp, {v: scaled[v] for v in ["aa", "I", "U", "E"]})


def test_a_sum_never_doubles_a_curve_another_key_already_drives():
    both = mapping.build_mapping(["Fcl_EYE_Close", "Fcl_EYE_Close_L", "Fcl_EYE_Close_R"], ARKIT, "vrm")
    assert both.keys == {"Fcl_EYE_Close_L": {"eyeBlinkLeft": 1.0}, "Fcl_EYE_Close_R": {"eyeBlinkRight": 1.0}}
    alone = mapping.build_mapping(["Fcl_EYE_Close"], ARKIT, "vrm")
    assert alone.keys == {"Fcl_EYE_Close": {"eyeBlinkLeft": 0.5, "eyeBlinkRight": 0.5}}
    vroid = mapping.build_mapping(VROID_KEYS, ARKIT)
    names = [name for terms in vroid.keys.values() for name in terms]
    assert len(names) == len(set(names))


def test_vrm_look_expressions_follow_the_eyes_and_left_is_the_characters_own_left():
    """VRM 0.x's LookLeft (and VRM 1.0's lookLeft) turn the eyes to the character's own left: the
    left eye out and the right eye in. A take looking 0.6 that way keys LookLeft 0.6 and LookRight 0."""
    for keys in (["A", "Blink", "LookUp", "LookDown", "LookLeft", "LookRight"],
                 VRM1_KEYS + ["lookUp", "lookDown", "lookLeft", "lookRight"]):
        built = mapping.build_mapping(keys, ARKIT)
        assert built.preset == "vrm"
        left, right, up, down = (next(k for k in keys if k.lower() == name) for name in
                                 ("lookleft", "lookright", "lookup", "lookdown"))
        assert built.keys[left] == {"eyeLookOutLeft": 0.5, "eyeLookInRight": 0.5}
        assert built.keys[right] == {"eyeLookInLeft": 0.5, "eyeLookOutRight": 0.5}
        assert built.keys[up] == {"eyeLookUpLeft": 0.5, "eyeLookUpRight": 0.5}
        assert built.keys[down] == {"eyeLookDownLeft": 0.5, "eyeLookDownRight": 0.5}
        exp = np.zeros((1, len(ARKIT)))
        exp[0, [ARKIT.index("eyeLookOutLeft"), ARKIT.index("eyeLookInRight")]] = 0.6
        values = mapping.evaluate(built, ARKIT, exp, {v: np.zeros(1) for v in ["aa", "I", "U", "E", "O"]})
        assert values[left][0] == pytest.approx(0.6) and values[right][0] == 0.0


def test_terms_on_names_the_model_lacks_are_dropped():
    model = [name for name in ARKIT if name != "mouthSmileRight"]
    built = mapping.build_mapping(["mouthSmile", "jawOpen", "mouthSmileRight"], model)
    assert built.keys == {"mouthSmile": {"mouthSmileLeft": 0.5}, "jawOpen": {"jawOpen": 1.0}}


def test_an_unknown_preset_is_refused():
    with pytest.raises(MappingError, match="unknown preset 'maya'"):
        mapping.build_mapping(ARKIT, ARKIT, "maya")


def test_evaluate_refuses_curves_that_do_not_match_the_names():
    with pytest.raises(MappingError, match=r"shape \(T, 52\)"):
        mapping.evaluate(mapping.Mapping(), ARKIT, np.zeros((3, 51)))


def test_a_hand_written_mapping_loads():
    loaded = mapping.from_json('{"keys": {"Smile": {"mouthSmileLeft": 1, "mouthSmileRight": 0.5}}, '
                               '"visemes": {"MTH_A": "aa"}}')
    assert loaded == mapping.Mapping(keys={"Smile": {"mouthSmileLeft": 1.0, "mouthSmileRight": 0.5}},
                                     visemes={"MTH_A": "aa"}, preset="custom")
    assert mapping.driven_keys(loaded) == ["Smile", "MTH_A"]


@pytest.mark.parametrize("text, message", [
    ("{", "not valid JSON"),
    ("", "not valid JSON"),
    ("[1, 2]", "must be an object, got list"),
    ('{"keys": {"A": {"jawOpen": NaN}}}', r"weight of 'jawOpen' for shape key 'A' is not a finite number: nan"),
    ('{"keys": {"A": {"jawOpen": Infinity}}}', "is not a finite number: inf"),
    ('{"keys": {"A": {"jawOpen": "0.5"}}}', "is not a finite number: '0.5'"),
    ('{"keys": {"A": {"jawOpen": true}}}', "is not a finite number: True"),
    ('{"keys": {"A": 0.5}}', "terms of shape key 'A' must be an object"),
    ('{"keys": []}', "'keys' must be an object"),
    ('{"visemes": {"M": "ah"}}', "viseme of shape key 'M' is 'ah', not a known viseme id"),
    ('{"visemes": {"M": 3}}', "viseme of shape key 'M' is 3, not a known viseme id"),
    ('{"keys": {"M": {"jawOpen": 1}}, "visemes": {"M": "aa"}}', "'M' is both a weighted sum and viseme 'aa'"),
    ('{"format": 2}', "format 2 is not supported"),
    ('{"kyes": {}}', "unknown fields: kyes"),
    ('{"preset": 5}', "'preset' must be a string"),
])
def test_malformed_json_is_refused_with_what_is_wrong(text, message):
    with pytest.raises(MappingError, match=message):
        mapping.from_json(text)


def test_a_malformed_preset_file_names_the_file(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('{"visemes": {"M": "zz"}}')
    with pytest.raises(MappingError, match=r"bad\.json: viseme of shape key 'M' is 'zz'"):
        mapping.load_preset(path)
    with pytest.raises(MappingError, match="cannot read mapping file"):
        mapping.load_preset(tmp_path / "missing.json")


@pytest.mark.parametrize("preset", sorted(mapping.PRESETS))
def test_every_presets_rows_read_back_as_the_panel_writes_them(preset):
    built = mapping.build_mapping(RIGS[preset], ARKIT, preset)
    rows = [(key, mapping.format_terms(built, key)) for key in RIGS[preset]]
    assert mapping.from_rows(rows, preset) == built
    assert [text for key, text in rows if key not in mapping.driven_keys(built)] == [""] * (
        len(RIGS[preset]) - len(mapping.driven_keys(built)))


@pytest.mark.parametrize("text, parsed", [
    ("", {}), ("  ", {}), ("jawOpen", {"jawOpen": 1.0}), ("viseme:PP", "PP"), ("Viseme: aa", "aa"),
    ("0.5*mouthSmileLeft + 0.5*mouthSmileRight", {"mouthSmileLeft": 0.5, "mouthSmileRight": 0.5}),
    ("2 * jawOpen+.25*jawOpen", {"jawOpen": 2.25}), ("-0.5*mouthClose", {"mouthClose": -0.5}),
    ("1e+1*jawOpen + 1e-1*tongueOut", {"jawOpen": 10.0, "tongueOut": 0.1}),
])
def test_panel_terms_parse(text, parsed):
    assert mapping.parse_terms(text) == parsed


@pytest.mark.parametrize("text, message", [
    ("viseme:ah", "'ah' is not a known viseme id"), ("0.5*", "cannot read '0.5\\*'"),
    ("jawOpen +", "cannot read ''"), ("0.5 jawOpen", "cannot read '0.5 jawOpen'"), ("a*b*c", "cannot read"),
])
def test_unreadable_panel_terms_are_refused(text, message):
    with pytest.raises(MappingError, match=message):
        mapping.parse_terms(text)
    with pytest.raises(MappingError, match="shape key 'K': "):
        mapping.from_rows([("J", "jawOpen"), ("K", text)])


def test_direct_keys_are_the_keys_that_carry_one_name_alone():
    built = mapping.build_mapping(CC4_KEYS, ARKIT)
    direct = mapping.direct_keys(built)
    assert direct["jawOpen"] == "Jaw_Open" and direct["mouthPucker"] == "Mouth_Pucker_Up_L"  # the first of four
    assert direct["eyeLookOutLeft"] == "Eye_L_Look_L"
    assert mapping.direct_keys(mapping.Mapping(keys={"Joy": {"mouthSmileLeft": 0.5, "mouthSmileRight": 0.5},
                                                     "Half": {"jawOpen": 0.5}})) == {}
    identity = mapping.identity_mapping(ARKIT)
    assert mapping.direct_keys(identity) == {name: name for name in ARKIT}
    assert mapping.from_json(mapping.to_json(identity)) == identity


def test_the_curves_a_rigs_own_keys_show_are_named_for_the_viseme_projection():
    """A VRoid rig's Joy key shows the smile, so its visemes must not show it again; a jaw key on
    another mesh (the teeth) leaves the visemes' jaw in, or the head's mouth would never open."""
    vroid = mapping.build_mapping(VROID_KEYS, ARKIT)
    shown = mapping.shown_by_keys(vroid)
    assert {"mouthSmileLeft", "mouthSmileRight", "cheekSquintLeft"} <= shown
    assert not {"mouthFunnel", "mouthPucker", "jawOpen"} & shown
    with_teeth = mapping.build_character_mapping([VROID_KEYS, ["JawOpen"]], ARKIT)
    assert with_teeth.visemes and with_teeth.keys["JawOpen"] == {"jawOpen": 1.0}
    assert "jawOpen" not in mapping.shown_by_keys(with_teeth)


def test_a_character_generator_head_moves_its_mouth_by_its_visemes_and_the_rest_by_its_sides():
    """VALID's heads: the mouth by viseme projection (their MouthOpen is not driven, the jaw opens
    in the visemes), both lip halves of MPB at PP, L/R in front as the character's sides, and a shape
    some driven key already shows (the open smile beside the closed one, the sad brow) left alone."""
    built = mapping.build_mapping(VALID_KEYS, ARKIT)
    cg = "h_expressions.{}_h".format
    assert built.visemes[cg("AE_AA")] == "aa" and built.visemes[cg("MPB_Up")] == built.visemes[cg("MPB_Down")] == "PP"
    assert cg("MouthOpen") not in built.keys and len(set(built.visemes.values())) == len(built.visemes) - 1
    assert built.keys[cg("LeyeClose")] == {"eyeBlinkLeft": 1.0} and built.keys[cg("RsmileClose")] == {
        "mouthSmileRight": 1.0}
    assert built.keys[cg("LLbrowUp")] == {"browOuterUpLeft": 1.0} and built.keys[cg("LbrowUp")] == {"browInnerUp": 1.0}
    for shape in ("LsmileOpen", "Lsad", "Lpityful", "Lnostril", "Shout", "UH_OO"):
        assert cg(shape) not in built.keys and cg(shape) not in built.visemes, shape
