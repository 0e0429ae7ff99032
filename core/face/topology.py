"""Mesh topology of the built-in face: triangles recovered from MediaPipe's tessellation edges.

The mediapipe package ships the FaceMesh tessellation only as an edge list. Every triangle of the
mesh is a 3-clique of that edge graph; a few 3-cliques are not triangles (three neighbours of a
degree-3 vertex are mutually connected, so the "lid" over the fan also forms a clique). Those
spurious cliques are exactly the ones whose three edges would each belong to three cliques, which
no manifold mesh allows, so they are dropped. Faces are then oriented consistently by walking
across shared edges, with the outward side toward +Z (the viewer).
"""

from collections import defaultdict, deque
from itertools import combinations

import numpy as np

__all__ = [
    "triangles_from_edges",
    "orient_faces",
    "boundary_loops",
    "vertex_adjacency",
    "cylindrical_uv",
]


def _edge_key(a: int, b: int) -> tuple[int, int]:
    return (a, b) if a < b else (b, a)


def triangles_from_edges(edges: np.ndarray, n_vertices: int) -> np.ndarray:
    """Triangles of a manifold triangle mesh given only its edges.

    Shapes: edges (E, 2) -> faces (F, 3), each row sorted ascending (not yet oriented).
    """
    neighbours: list[set[int]] = [set() for _ in range(n_vertices)]
    unique = {_edge_key(int(a), int(b)) for a, b in edges}
    for a, b in unique:
        neighbours[a].add(b)
        neighbours[b].add(a)
    cliques = {tuple(sorted((a, b, c))) for a, b in unique for c in neighbours[a] & neighbours[b]}
    edge_use: dict[tuple[int, int], int] = defaultdict(int)
    for tri in cliques:
        for a, b in combinations(tri, 2):
            edge_use[(a, b)] += 1
    faces = [t for t in cliques if not all(edge_use[e] > 2 for e in combinations(t, 2))]
    return np.array(sorted(faces), dtype=np.int64)


def orient_faces(faces: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Consistent winding, counter-clockwise seen from +Z (outside of a face looking at +Z).

    Breadth-first over faces sharing an edge: a neighbour must traverse the shared edge in the
    opposite direction. The whole mesh is then flipped if its area-weighted normal points to -Z.
    Shapes: faces (F, 3), vertices (V, 3) -> faces (F, 3).
    """
    faces = faces.copy()
    by_edge: dict[tuple[int, int], list[int]] = defaultdict(list)
    for f, tri in enumerate(faces):
        for i in range(3):
            by_edge[_edge_key(tri[i], tri[(i + 1) % 3])].append(f)
    done = np.zeros(len(faces), dtype=bool)
    for seed in range(len(faces)):
        if done[seed]:
            continue
        done[seed] = True
        queue = deque([seed])
        while queue:
            f = queue.popleft()
            tri = faces[f]
            for i in range(3):
                a, b = int(tri[i]), int(tri[(i + 1) % 3])
                for g in by_edge[_edge_key(a, b)]:
                    if done[g]:
                        continue
                    directed = {(int(faces[g][j]), int(faces[g][(j + 1) % 3])) for j in range(3)}
                    if (a, b) in directed:  # same direction: flip g
                        faces[g] = faces[g][::-1]
                    done[g] = True
                    queue.append(g)
    v = vertices[faces]  # (F, 3, 3)
    normal_sum = np.cross(v[:, 1] - v[:, 0], v[:, 2] - v[:, 0]).sum(axis=0)
    return faces if normal_sum[2] >= 0 else faces[:, ::-1].copy()


def boundary_loops(faces: np.ndarray) -> list[np.ndarray]:
    """The closed boundary loops of an oriented mesh, longest first, each in walking order.

    Shapes: faces (F, 3) -> list of (L_i,) vertex indices.
    """
    directed = {(int(t[i]), int(t[(i + 1) % 3])) for t in faces for i in range(3)}
    nxt = {a: b for a, b in directed if (b, a) not in directed}
    loops: list[np.ndarray] = []
    while nxt:
        start = next(iter(nxt))
        loop = [start]
        cur = nxt.pop(start)
        while cur != start:
            loop.append(cur)
            cur = nxt.pop(cur)
        loops.append(np.array(loop, dtype=np.int64))
    return sorted(loops, key=len, reverse=True)


def vertex_adjacency(faces: np.ndarray, vertices: np.ndarray):
    """Sparse symmetric matrix of mesh-edge lengths (for geodesic distances with Dijkstra).

    Shapes: faces (F, 3), vertices (V, 3) -> scipy.sparse (V, V).
    """
    from scipy.sparse import coo_matrix

    edges = np.unique(np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1), axis=0)
    length = np.linalg.norm(vertices[edges[:, 0]] - vertices[edges[:, 1]], axis=1)
    rows, cols = np.r_[edges[:, 0], edges[:, 1]], np.r_[edges[:, 1], edges[:, 0]]
    n = len(vertices)
    return coo_matrix((np.r_[length, length], (rows, cols)), shape=(n, n)).tocsr()


def cylindrical_uv(vertices: np.ndarray) -> np.ndarray:
    """UVs from a cylinder around the vertical axis: u by azimuth, v by height, both in [0, 1].

    Shapes: vertices (V, 3) -> (V, 2).
    """
    centre = vertices.mean(axis=0)
    radius_axis_z = centre[2] - (vertices[:, 2].max() - centre[2])  # cylinder axis behind the face
    theta = np.arctan2(vertices[:, 0] - centre[0], vertices[:, 2] - radius_axis_z)
    height = vertices[:, 1]
    u = (theta - theta.min()) / np.ptp(theta)
    v = (height - height.min()) / np.ptp(height)
    return np.stack([u, v], axis=1)

