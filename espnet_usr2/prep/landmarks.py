"""Face landmarks per frame: MediaPipe face mesh, or precomputed files.

Whatever the source, landmarks of one clip are a float array ``(T, K, 2)`` of pixel
coordinates ``(x, y)`` with all-NaN rows for frames without a face; the layout (68 or
468 points) is recognised from ``K`` (:func:`landmark_set_for`).

Precomputed files follow the public LRS2/LRS3 landmark releases: one pickle per clip
holding a per-frame list of ``(68, 2)`` arrays, ``None`` where no face was found.
``.npy`` / ``.npz`` arrays ``(T, K, 2)`` with NaN rows are accepted too.
"""

from __future__ import annotations

import contextlib
import io
import os
import pickle
import sys
from pathlib import Path
from typing import Any, Iterator, List, Optional, Union

import numpy as np

from espnet_usr2.prep import roi_errors as E
from espnet_usr2.prep.landmark_sets import landmark_set_for
from espnet_usr2.prep.roi_errors import SkipUtterance

PathLike = Union[str, Path]


@contextlib.contextmanager
def _native_stderr_silenced() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for a moment (C++ log lines of a library).

    MediaPipe's TFLite runtime writes the same absl warnings every time a graph starts
    (once per clip), which no environment variable turns off; in a 100k-clip job log
    they would bury the skip messages.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class MediaPipeFaceMesh:
    """MediaPipe face mesh (468 points) in tracking mode, one instance per clip.

    Tracking mode runs the face detector only when the mesh loses the face, which is
    ~3x faster than detecting on every frame; its state must not leak from one clip to
    the next, hence one instance per clip (creating one costs a few milliseconds).
    The models are bundled with ``mediapipe==0.10.21``; nothing is downloaded.
    """

    def __init__(
        self,
        min_detection_confidence: float = 0.5,
        min_tracking_confidence: float = 0.5,
        quiet: bool = True,
        max_faces: int = 1,
    ) -> None:
        # MediaPipe logs through glog; keep warnings about its graph out of job logs.
        os.environ.setdefault("GLOG_minloglevel", "2")
        import mediapipe as mp

        if max_faces < 1:
            raise ValueError(f"max_faces must be >= 1, got {max_faces}")
        # More than one face only when the caller chooses among them (a face hint):
        # with several, MediaPipe keeps running its detector until it has found
        # max_faces, which costs time on the usual one-face clip.
        self._mesh = mp.solutions.face_mesh.FaceMesh(
            static_image_mode=False,
            max_num_faces=max_faces,
            refine_landmarks=False,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )
        self._quiet_next = quiet  # the graph logs its start-up warnings on the first frame

    def __call__(self, rgb: np.ndarray) -> Optional[np.ndarray]:
        """Landmarks ``(468, 2)`` in pixels for an RGB uint8 frame, or None without a face."""
        faces = self.detect_all(rgb)
        return faces[0] if faces else None

    def detect_all(self, rgb: np.ndarray) -> List[np.ndarray]:
        """Landmarks ``(468, 2)`` in pixels of every face found (up to ``max_faces``)."""
        height, width = rgb.shape[:2]
        if self._quiet_next:
            self._quiet_next = False
            with _native_stderr_silenced():
                result = self._mesh.process(np.ascontiguousarray(rgb))
        else:
            result = self._mesh.process(np.ascontiguousarray(rgb))
        faces = []
        for face in result.multi_face_landmarks or []:
            points = face.landmark
            xy = np.fromiter((c for p in points for c in (p.x, p.y)), dtype=np.float64, count=2 * len(points))
            faces.append(xy.reshape(-1, 2) * (width, height))
        return faces

    def close(self) -> None:
        self._mesh.close()

    def __enter__(self) -> "MediaPipeFaceMesh":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickle plain containers and numpy arrays only.

    Landmark pickles come from third parties; refusing arbitrary classes keeps a
    malicious file from running code during data preparation.
    """

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),  # how protocol-2 pickles store the bytes inside an array
    }

    def __init__(self, file: io.BytesIO) -> None:
        # latin1 reads Python 2 pickles' byte strings (array buffers) unchanged.
        super().__init__(file, encoding="latin1")

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a landmark pickle")


def _frames_to_array(frames: Any, path: Path) -> np.ndarray:
    """A per-frame sequence (arrays or None) or a stacked array -> (T, K, 2) with NaN rows."""
    if isinstance(frames, np.ndarray) and frames.dtype != object:
        array = frames.astype(np.float64)
        if array.ndim == 4 and array.shape[1] == 1:  # (T, 1 face, K, 2)
            array = array[:, 0]
        if array.ndim != 3 or array.shape[-1] < 2:
            raise SkipUtterance(E.UNREADABLE_LANDMARKS, f"{path}: array of shape {frames.shape}, expected (T, K, 2)")
        return array[..., :2]
    if not isinstance(frames, (list, tuple, np.ndarray)):
        raise SkipUtterance(E.UNREADABLE_LANDMARKS, f"{path}: expected a per-frame list, got {type(frames).__name__}")
    present = [np.asarray(f, dtype=np.float64) for f in frames if f is not None]
    if not present:
        raise SkipUtterance(E.NO_FACE, f"{path}: no frame has landmarks")
    # A frame may store one face as (1, K, 2) or carry a third (z / score) column.
    shapes = {p.reshape(-1, p.shape[-1]).shape for p in present}
    if len(shapes) != 1:
        raise SkipUtterance(E.UNREADABLE_LANDMARKS, f"{path}: frames have different shapes {sorted(shapes)}")
    num_points, dims = shapes.pop()
    if dims < 2:
        raise SkipUtterance(E.UNREADABLE_LANDMARKS, f"{path}: points have {dims} coordinate(s)")
    out = np.full((len(frames), num_points, 2), np.nan)
    for t, frame in enumerate(frames):
        if frame is not None:
            out[t] = np.asarray(frame, dtype=np.float64).reshape(num_points, dims)[:, :2]
    return out


def load_landmarks(path: PathLike) -> np.ndarray:
    """Read precomputed landmarks of one clip as ``(T, K, 2)`` float64, NaN rows = no face."""
    path = Path(path)
    if not path.is_file():
        raise SkipUtterance(E.MISSING_LANDMARKS, f"landmark file not found: {path}")
    try:
        if path.suffix == ".npy":
            frames = np.load(path, allow_pickle=False)
        elif path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                key = "landmarks" if "landmarks" in archive else next(iter(archive), None)
                if key is None:
                    raise SkipUtterance(E.UNREADABLE_LANDMARKS, f"{path}: empty archive")
                frames = archive[key]
        else:
            frames = _NumpyOnlyUnpickler(io.BytesIO(path.read_bytes())).load()
    except SkipUtterance:
        raise
    except Exception as err:  # any parse failure of a third-party file is a skip reason
        raise SkipUtterance(E.UNREADABLE_LANDMARKS, f"{path}: {type(err).__name__}: {err}") from err
    array = _frames_to_array(frames, path)
    if len(array) == 0:
        raise SkipUtterance(E.UNREADABLE_LANDMARKS, f"{path}: no frames")
    try:
        landmark_set_for(array.shape[1])
    except ValueError as err:
        raise SkipUtterance(E.UNREADABLE_LANDMARKS, f"{path}: {err}") from err
    return array


def save_landmarks_pickle(path: PathLike, landmarks: np.ndarray) -> Path:
    """Write ``(T, K, 2)`` landmarks in the public release layout (list, None = no face)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [None if np.isnan(f).any() else np.asarray(f, dtype=np.float32) for f in landmarks]
    with open(path, "wb") as fh:
        pickle.dump(frames, fh, protocol=4)
    return path
