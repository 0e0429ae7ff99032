"""The `flowvq` command line. Subcommands: face info, face export, fit, demo, generate, train, corpus, eval,
plus those other packages register under the ``flowvq.commands`` entry-point group (``serve`` comes
from `server`), so that `core` never imports them.

Every error caused by the user's input is printed as one line ``flowvq: error: ...`` with exit
status 2; nothing is written when a command fails.
"""

import argparse
import json
import sys
from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import numpy as np

from core.coeff.cli import add_generate_parser
from core.corpus.cli import add_corpus_parser
from core.errors import FlowVQError
from core.eval.cli import add_eval_parser
from core.render.cli import add_render_parser
from core.train.cli import add_train_parser

__all__ = ["main", "build_parser"]

MESH_SUFFIXES = (".obj", ".glb", ".npz")
COMMAND_GROUP = "flowvq.commands"


def _face_info(args: argparse.Namespace) -> dict:
    from core.face import load_face_model

    model = load_face_model(args.model)
    info = {
        "name": model.name,
        "version": model.version,
        "id": model.id,
        "vertices": model.n_vertices,
        "faces": int(len(model.faces)),
        "expressions": model.n_expressions,
        "names": list(model.names),
    }
    if args.json:
        print(json.dumps(info))
    else:
        print(f"{model.id}: {info['vertices']} vertices, {info['faces']} faces, "
              f"{info['expressions']} expressions\n  " + " ".join(model.names))
    return info


def _parse_weights(pairs: list[str], names: tuple[str, ...]) -> np.ndarray:
    """``["jawOpen=0.5", ...]`` -> a (D,) coefficient vector; unknown names are an error."""
    exp = np.zeros(len(names))
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in names:
            raise FlowVQError(f"unknown expression {name!r}; run `flowvq face info` for the names")
        try:
            exp[names.index(name)] = float(value)
        except ValueError as exc:
            raise FlowVQError(f"expression weight for {name!r} must be a number, got {value!r}") from exc
    return exp


def export_face(model, out: Path, exp: np.ndarray) -> None:
    """Write the model (with expression `exp` applied) as .obj/.glb (trimesh) or .npz (everything)."""
    suffix = out.suffix.lower()
    if suffix not in MESH_SUFFIXES:
        raise FlowVQError(f"cannot export to {out.name}: use one of {', '.join(MESH_SUFFIXES)}")
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".npz":
        model.save(out)
        return
    import trimesh

    mesh = trimesh.Trimesh(
        vertices=model.expression_mesh(exp),
        faces=model.faces,
        visual=trimesh.visual.TextureVisuals(uv=model.uv),
        process=False,
    )
    mesh.export(out)


def _face_export(args: argparse.Namespace) -> None:
    from core.face import load_face_model

    model = load_face_model(args.model)
    export_face(model, args.out, _parse_weights(args.exp or [], model.names))
    print(f"wrote {args.out}")


def fit_image(image_path: Path, model_path: Path | None = None) -> dict:
    """Detect landmarks on a photo and fit: ``{"face_model", "exp": {name: w}, "pose": [...], ...}``."""
    from core.face import load_face_model
    from core.face.fit import fit
    from core.face.landmarks import detect_landmarks, read_image

    model = load_face_model(model_path)
    result = fit(model, detect_landmarks(read_image(image_path)))
    return {
        "image": str(image_path),
        "face_model": model.id,
        "exp": {name: round(float(w), 4) for name, w in zip(model.names, result.exp)},
        "pose": [round(float(p), 6) for p in result.pose],
        "pose_order": ["pitch", "yaw", "roll", "tx", "ty", "tz"],
        "scale_px_per_m": round(result.scale, 3),
        "rms_mm": round(result.rms_m * 1000.0, 3),
    }


def _fit(args: argparse.Namespace) -> None:
    result = fit_image(args.image, args.model)
    if args.json:
        print(json.dumps(result))
        return
    strongest = sorted(result["exp"].items(), key=lambda kv: -kv[1])
    print(f"{result['image']} fitted with {result['face_model']} (rms {result['rms_mm']} mm)")
    for name, weight in strongest:
        if weight >= 0.05:
            print(f"  {name:<20} {weight:.2f}")
    print("  pose (pitch, yaw, roll rad; tx, ty, tz m): " + ", ".join(f"{p:.3f}" for p in result["pose"]))


DEMO_SPEECH = Path(__file__).resolve().parent / "assets" / "demo_speech.wav"


def _demo(args: argparse.Namespace) -> None:
    """Fit the bundled portrait, export the neutral and the fitted head, and generate two happy
    takes of the committed speech clip with the shipped weights, on the portrait's face."""
    import skimage.data
    import skimage.io

    from core.coeff.generator import CoeffGenerator, GenerateSettings
    from core.coeff.sampler import SampleSettings
    from core.formats.takes import save_takes

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    portrait = out / "portrait.png"
    skimage.io.imsave(portrait, skimage.data.astronaut(), check_contrast=False)
    fitted = fit_image(portrait)
    (out / "portrait_fit.json").write_text(json.dumps(fitted, indent=1))
    generator = CoeffGenerator.load()
    face = generator.face
    source = np.array([fitted["exp"][n] for n in face.names], np.float32)
    export_face(face, out / "head.glb", np.zeros(face.n_expressions))
    export_face(face, out / "portrait_expression.glb", source)
    settings = GenerateSettings(sample=SampleSettings(emotion="happy", seed=0, takes=2), source_exp=source)
    takes = generator.generate(DEMO_SPEECH, settings)
    save_takes(out / "takes.json", takes)
    print(f"demo: fitted {portrait} -> {out / 'portrait_fit.json'}; heads -> {out / 'head.glb'}, "
          f"{out / 'portrait_expression.glb'}; {len(takes)} happy takes of {DEMO_SPEECH.name} "
          f"({takes[0].frames} frames at {takes[0].fps:g} fps) -> {out / 'takes.json'}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flowvq", description="FlowVQ Talker: emotional lip-sync for Blender")
    sub = parser.add_subparsers(dest="command", required=True)

    face = sub.add_parser("face", help="the face model").add_subparsers(dest="face_command", required=True)
    info = face.add_parser("info", help="print the face model's name, sizes and coefficient names")
    info.add_argument("--model", type=Path, help="a FlowVQ .npz or BFM_model_front.mat (default: built-in)")
    info.add_argument("--json", action="store_true", help="print JSON")
    info.set_defaults(func=_face_info)
    export = face.add_parser("export", help="write the head as .obj, .glb or .npz")
    export.add_argument("out", type=Path)
    export.add_argument("--model", type=Path)
    export.add_argument("--exp", action="append", metavar="NAME=WEIGHT", help="apply an expression weight")
    export.set_defaults(func=_face_export)

    fit = sub.add_parser("fit", help="fit the face model to the face in a photo")
    fit.add_argument("image", type=Path)
    fit.add_argument("--model", type=Path)
    fit.add_argument("--json", action="store_true")
    fit.set_defaults(func=_fit)

    demo = sub.add_parser("demo", help="run the demo on the built-in defaults")
    demo.add_argument("--out", type=Path, default=Path("out"))
    demo.set_defaults(func=_demo)

    add_generate_parser(sub)
    add_train_parser(sub)
    add_corpus_parser(sub)
    add_eval_parser(sub)
    add_render_parser(sub)
    for entry in entry_points(group=COMMAND_GROUP):
        _add_plugin_parser(sub, entry)
    return parser


def _add_plugin_parser(sub: argparse._SubParsersAction, entry: EntryPoint) -> None:
    """Register the subcommand an installed package offers under `COMMAND_GROUP`: ``entry`` names a
    function taking the subparsers. When its package cannot be imported (an optional extra is not
    installed), the command is still listed and says what to install."""
    try:
        add_parser = entry.load()
    except ImportError as exc:
        missing = sub.add_parser(entry.name, help=f"unavailable: {exc}")
        missing.set_defaults(func=_unavailable(entry.name, exc))
        return
    add_parser(sub)


def _unavailable(name: str, exc: ImportError) -> Callable[[argparse.Namespace], None]:
    """The command function of a plugin whose imports failed."""
    def run(args: argparse.Namespace) -> None:
        raise FlowVQError(f"'flowvq {name}' cannot run: {exc}; install the project with its extras: "
                          f"pip install -e '.[server,train]'")
    return run


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except FlowVQError as exc:
        print(f"flowvq: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
