"""Builds the built-in face model asset from real photos: ``python -m core.face.build``.

Reproducible: the same mediapipe version and photos give the same file. Photos are the frontal
portraits that ship inside installed packages (scikit-image's `astronaut`, matplotlib's
`grace_hopper.jpg`), so nothing is downloaded. Each photo's landmarks are symmetrised and put in
the canonical frame (`core.face.neutral`); all photos shape the upper face, but only photos with
closed lips (inner-lip gap under 1.5 mm) shape the mouth area, so the neutral has a closed,
relaxed mouth whatever the photos' expressions.
"""

import argparse
from pathlib import Path

import numpy as np

from core.face import BUILTIN_ASSET
from core.face.landmarks import detect_landmarks, tessellation_edges
from core.face.model import FaceModel
from core.face.neutral import canonical_frame, mirror_permutation, symmetrize
from core.face.regions import LANDMARKS, MIDLINE, build_regions, contour_regions, falloff, geodesic_from
from core.face.rig import ARKIT_NAMES, RigContext, author_basis
from core.face.topology import cylindrical_uv, orient_faces, triangles_from_edges, vertex_adjacency

__all__ = ["BUILTIN_NAME", "BUILTIN_VERSION", "ASSET_PATH", "bundled_photos", "build_builtin", "main"]

BUILTIN_NAME = "builtin-arkit52"
BUILTIN_VERSION = "1"
ASSET_PATH = BUILTIN_ASSET
CLOSED_LIPS_M = 0.0015
MOUTH_AREA_RADIUS_M = 0.045


def bundled_photos() -> dict[str, np.ndarray]:
    """The real frontal portraits shipped inside installed packages, as RGB uint8 images."""
    import matplotlib
    import skimage.data

    from core.face.landmarks import read_image

    hopper = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return {"astronaut": skimage.data.astronaut(), "grace_hopper": read_image(hopper)}


def _canonical_shapes(landmark_sets: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Symmetric canonical shapes, the oriented faces and the mirror map, from raw landmarks."""
    partner = mirror_permutation(landmark_sets[0], MIDLINE)
    symmetric = [symmetrize(p, partner) for p in landmark_sets]
    faces = orient_faces(triangles_from_edges(tessellation_edges(), len(partner)), symmetric[0])
    frame_regions = {k: np.asarray(v) for k, v in LANDMARKS.items()} | contour_regions(faces, symmetric[0])
    return [canonical_frame(s, frame_regions) for s in symmetric], faces, partner


def _blend_neutral(shapes: list[np.ndarray], faces: np.ndarray) -> np.ndarray:
    """Average of the shapes; in the mouth area only shapes with closed lips count. (V, 3)."""
    regions = contour_regions(faces, shapes[0])
    upper, lower = regions["inner_lip_upper"], regions["inner_lip_lower"]
    closed = np.array([np.abs(s[upper, 1].mean() - s[lower, 1].mean()) < CLOSED_LIPS_M for s in shapes])
    if not closed.any():
        raise ValueError("no photo with closed lips: the neutral mouth cannot be estimated")
    mean_all, mean_closed = np.mean(shapes, axis=0), np.mean(np.asarray(shapes)[closed], axis=0)
    mouth = falloff(geodesic_from(vertex_adjacency(faces, mean_closed), regions["inner_lips"]), MOUTH_AREA_RADIUS_M)
    return (1.0 - mouth)[:, None] * mean_all + mouth[:, None] * mean_closed


def build_builtin(photos: dict[str, np.ndarray]) -> FaceModel:
    """The built-in face model from portraits (name -> RGB image)."""
    shapes, faces, partner = _canonical_shapes([detect_landmarks(img) for img in photos.values()])
    neutral = _blend_neutral(shapes, faces)
    neutral = 0.5 * (neutral + (neutral * np.array([-1.0, 1.0, 1.0]))[partner])  # exactly symmetric
    regions = build_regions(faces, neutral)
    basis = author_basis(RigContext(neutral, faces, regions, partner))
    return FaceModel(
        name=BUILTIN_NAME,
        version=BUILTIN_VERSION,
        neutral=neutral,
        faces=faces,
        uv=cylindrical_uv(neutral),
        basis=basis,
        names=ARKIT_NAMES,
        lower=np.zeros(len(ARKIT_NAMES)),
        upper=np.ones(len(ARKIT_NAMES)),
        regions=regions,
    )


def main(argv: list[str] | None = None) -> None:
    """Command line: rebuild the asset (default path: the one `core` loads)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ASSET_PATH)
    args = parser.parse_args(argv)
    model = build_builtin(bundled_photos())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    model.save(args.out)
    print(f"wrote {args.out}: {model.id}, {model.n_vertices} vertices, {len(model.faces)} faces, "
          f"{model.n_expressions} expressions")


if __name__ == "__main__":
    main()
