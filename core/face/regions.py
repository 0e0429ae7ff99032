"""Named vertex sets of the built-in face (MediaPipe FaceMesh landmark indices) and areas.

Landmark indices come from mediapipe's published connection lists (`face_mesh_connections`) and
its canonical landmark map; everything else (lid and lip contours, areas of influence) is derived
from the mesh topology and geodesic distances at build time.
"""

import numpy as np
from scipy.sparse.csgraph import dijkstra

from core.face.topology import boundary_loops, vertex_adjacency

__all__ = ["LANDMARKS", "MIDLINE", "contour_regions", "geodesic_from", "falloff", "build_regions"]

# Single landmarks and small sets, named for the subject's own left/right (+X is the subject's left).
LANDMARKS: dict[str, list[int]] = {
    "forehead_top": [10],
    "chin": [152],
    "side_left": [454],
    "side_right": [234],
    "nose_tip": [1],
    "subnasale": [2],
    "lip_corner_left": [291, 308],
    "lip_corner_right": [61, 78],
    "upper_lip_outer": [0, 37, 39, 40, 185, 267, 269, 270, 409],
    "lower_lip_outer": [17, 84, 181, 91, 146, 314, 405, 321, 375],
    "brow_left": [276, 283, 282, 295, 285, 300, 293, 334, 296, 336],
    "brow_right": [46, 53, 52, 65, 55, 70, 63, 105, 66, 107],
    "brow_inner_left": [285, 336, 295, 296],
    "brow_inner_right": [55, 107, 65, 66],
    "brow_outer_left": [276, 300, 283, 293],
    "brow_outer_right": [46, 70, 53, 63],
    "cheek_left": [425, 411, 280, 352, 346, 347, 330],
    "cheek_right": [205, 187, 50, 123, 117, 118, 101],
    "under_eye_left": [346, 347, 348, 349, 350, 330, 329],
    "under_eye_right": [117, 118, 119, 120, 121, 101, 100],
    "nostril_left": [278, 294, 327, 358, 279, 360, 344, 438, 457, 420, 429],
    "nostril_right": [48, 64, 98, 129, 49, 131, 115, 218, 237, 198, 209],
    "chin_area": [152, 175, 199, 200, 171, 396, 148, 377, 208, 428],
}

# The sagittal midline, forehead to chin: the vertices the left/right mirror leaves in place.
MIDLINE = np.array([10, 151, 9, 8, 168, 6, 197, 195, 5, 4, 1, 19, 94, 2, 164, 0, 11, 12, 13, 14,
                    15, 16, 17, 18, 200, 199, 175, 152])


def contour_regions(faces: np.ndarray, vertices: np.ndarray) -> dict[str, np.ndarray]:
    """Eye lids and inner lips from the mesh's boundary loops (outer oval, mouth, two eyes).

    Each lid/lip contour is ordered along +X and excludes the two corner vertices.
    Shapes: faces (F, 3), vertices (V, 3) -> name -> (n,) indices.
    """
    oval, mouth, *eyes = boundary_loops(faces)
    eye_left, eye_right = sorted(eyes, key=lambda loop: -vertices[loop, 0].mean())
    out = {"face_oval": oval, "inner_lips": mouth, "eye_left": eye_left, "eye_right": eye_right}
    for name, loop in (("eye_left", eye_left), ("eye_right", eye_right), ("inner_lip", mouth)):
        upper, lower, corners = _split_loop(loop, vertices)
        out[f"{name}_upper"], out[f"{name}_lower"], out[f"{name}_corners"] = upper, lower, corners
    return out


def _split_loop(loop: np.ndarray, vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A closed contour split at its leftmost and rightmost vertices into upper and lower halves."""
    x = vertices[loop, 0]
    i, j = int(np.argmin(x)), int(np.argmax(x))
    rolled = np.roll(loop, -i)
    k = (j - i) % len(loop)
    first, second = rolled[1:k], rolled[k + 1:]
    if vertices[first, 1].mean() < vertices[second, 1].mean():
        first, second = second, first
    order = lambda idx: idx[np.argsort(vertices[idx, 0])]  # noqa: E731 - ordering helper
    return order(first), order(second), np.array([rolled[0], rolled[k]])


def geodesic_from(graph, seeds: np.ndarray) -> np.ndarray:
    """Shortest distance along mesh edges from any seed vertex. Shapes: seeds (S,) -> (V,)."""
    return dijkstra(graph, directed=False, indices=np.asarray(seeds), min_only=True)


def falloff(distance: np.ndarray, radius: float) -> np.ndarray:
    """Smooth weight: 1 at distance 0, 0 from `radius` on (raised cosine). Shapes: (V,) -> (V,)."""
    t = np.clip(np.asarray(distance) / radius, 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * t))


def build_regions(faces: np.ndarray, vertices: np.ndarray) -> dict[str, np.ndarray]:
    """All named vertex sets of the built-in model: landmarks, contours and areas of influence.

    Areas ("area_*") are the vertices a group of blendshapes may move; the rig keeps every delta
    inside its area, and the tests check it.
    """
    graph = vertex_adjacency(faces, vertices)
    regions = {k: np.asarray(v) for k, v in LANDMARKS.items()}
    regions["midline"] = MIDLINE
    regions.update(contour_regions(faces, vertices))
    lips = np.concatenate([regions["inner_lips"], regions["upper_lip_outer"], regions["lower_lip_outer"]])
    regions["lips"] = np.flatnonzero(geodesic_from(graph, lips) <= 0.004)
    nose_base_y = vertices[LANDMARKS["subnasale"][0], 1]
    for side, sign in (("left", 1.0), ("right", -1.0)):
        eye = regions[f"eye_{side}"]
        regions[f"area_eye_{side}"] = np.flatnonzero(geodesic_from(graph, eye) <= 0.028)
        brow = np.concatenate([regions[f"brow_{side}"], eye])
        regions[f"area_brow_{side}"] = np.flatnonzero(geodesic_from(graph, brow) <= 0.035)
        cheek = np.concatenate([regions[f"cheek_{side}"], regions[f"under_eye_{side}"], regions[f"eye_{side}_lower"]])
        regions[f"area_cheek_{side}"] = np.flatnonzero(geodesic_from(graph, cheek) <= 0.025)
        lower_half = np.flatnonzero((sign * vertices[:, 0] > -0.012) & (vertices[:, 1] < nose_base_y + 0.012))
        regions[f"area_mouth_{side}"] = np.union1d(lower_half, regions[f"area_cheek_{side}"])
    regions["area_cheeks"] = np.union1d(regions["area_cheek_left"], regions["area_cheek_right"])
    regions["area_brows"] = np.union1d(regions["area_brow_left"], regions["area_brow_right"])
    regions["area_lower_face"] = np.flatnonzero(vertices[:, 1] < nose_base_y + 0.012)
    nose = np.concatenate([regions["nostril_left"], regions["nostril_right"], regions["brow_inner_left"],
                           regions["brow_inner_right"]])
    regions["area_nose"] = np.flatnonzero(geodesic_from(graph, nose) <= 0.02)
    return regions
