"""FaceMesh landmark detection on photos and video frames (mediapipe 0.10.21, bundled models).

Landmarks are returned in the face model's axes (`core.face.pose`), in pixels: x to the image's
right (the subject's left), y up, z toward the camera, with mediapipe's relative depth scaled by
the image width as mediapipe documents. They are the 468 vertices of the built-in mesh.
"""

from pathlib import Path

import numpy as np

from core.errors import FlowVQError

__all__ = [
    "N_LANDMARKS",
    "FaceDetectionError",
    "NoFaceError",
    "MultipleFacesError",
    "read_image",
    "LandmarkDetector",
    "detect_landmarks",
    "tessellation_edges",
]

N_LANDMARKS = 468


class FaceDetectionError(FlowVQError):
    """A portrait on which exactly one face could not be found."""
    code = "face_detection"


class NoFaceError(FaceDetectionError):
    """No face was detected."""
    code = "no_face"


class MultipleFacesError(FaceDetectionError):
    """More than one face was detected."""
    code = "multiple_faces"


def read_image(path: str | Path) -> np.ndarray:
    """An RGB uint8 image from any file OpenCV reads. Shapes: -> (H, W, 3)."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise FaceDetectionError(f"image not found: {path}")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise FaceDetectionError(f"{path} is not an image OpenCV can read (PNG, JPEG, ...)")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


class LandmarkDetector:
    """One FaceMesh graph for many images (a video's frames), as a context manager.

    Every image is still detected on its own (static-image mode, no tracking between frames), so
    `detect` gives what `detect_landmarks` gives for each image, without building the graph for
    each one.
    """

    def __init__(self) -> None:
        import mediapipe as mp

        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=True, max_num_faces=2, refine_landmarks=False, min_detection_confidence=0.5
        )

    def __enter__(self) -> "LandmarkDetector":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._mesh.close()

    def detect(self, image: np.ndarray) -> np.ndarray:
        """The 468 FaceMesh landmarks of the one face in an RGB image, in model axes and pixels.

        Raises `NoFaceError` or `MultipleFacesError` unless exactly one face is found.
        Shapes: image (H, W, 3) uint8 -> (468, 3).
        """
        if image.ndim != 3 or image.shape[2] != 3:
            raise FaceDetectionError(f"expected an RGB image (H, W, 3), got shape {image.shape}")
        height, width = image.shape[:2]
        result = self._mesh.process(np.ascontiguousarray(image, dtype=np.uint8))
        faces = result.multi_face_landmarks or []
        if not faces:
            raise NoFaceError("no face found in the image: use a photo with one clearly visible, roughly frontal face")
        if len(faces) > 1:
            raise MultipleFacesError(f"{len(faces)} faces found in the image: crop it to the one face to animate")
        raw = np.array([[p.x, p.y, p.z] for p in faces[0].landmark[:N_LANDMARKS]], dtype=np.float64)
        return np.stack([raw[:, 0] * width, (1.0 - raw[:, 1]) * height, -raw[:, 2] * width], axis=1)


def detect_landmarks(image: np.ndarray) -> np.ndarray:
    """The 468 FaceMesh landmarks of the one face in one RGB image (`LandmarkDetector.detect`).

    Shapes: image (H, W, 3) uint8 -> (468, 3).
    """
    with LandmarkDetector() as detector:
        return detector.detect(image)


def tessellation_edges() -> np.ndarray:
    """The FaceMesh tessellation edge list that the mediapipe package ships. Shapes: -> (E, 2)."""
    from mediapipe.python.solutions.face_mesh_connections import FACEMESH_TESSELATION

    return np.array(sorted(FACEMESH_TESSELATION), dtype=np.int64)
