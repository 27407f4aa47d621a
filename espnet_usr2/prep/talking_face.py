"""A talking face: a real photo whose mouth moves with the phonemes being spoken.

The face is scikit-image's public-domain astronaut photo (Eileen Collins, NASA). Her
smiling mouth is removed once by inpainting, then for every video frame a parametric
mouth is drawn in its place and the chin is moved with the jaw:

* each espeak-ng phoneme maps to one or two viseme targets (:data:`VISEMES`:
  closed, open, rounded, spread, teeth on lip ...; diphthongs glide between two);
* the targets form a 100 Hz track over the utterance, smoothed with a short Gaussian so
  that neighbouring phonemes blend (coarticulation) as real lips do, then sampled at
  the video frame times;
* a frame is drawn from the track's :class:`MouthShape`: jaw drop (a smooth remap of the
  skin below the mouth), lip outline, dark mouth cavity, teeth and tongue, all drawn
  anti-aliased at sub-pixel precision, so small changes in shape stay visible.

Only a patch around the mouth and chin changes between frames; everything above the
mouth line is untouched (tested). "Speakers" differ by :class:`FaceStyle`: scale,
shift, small rotation, brightness/contrast/tint, lip colour and mouth width. A
per-clip slow head drift (:func:`head_motion`) makes the mouth-ROI pipeline track.

All geometry is in the photo's pixel coordinates, measured once with MediaPipe's face
mesh (so MediaPipe is not needed to render); the final affine warp maps the photo to
the square output frame.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields
from typing import Iterable, Optional, Sequence

import cv2
import numpy as np

# ---------------------------------------------------------------------------------
# Geometry of the astronaut photo (512x512), from MediaPipe face-mesh landmarks.
# ---------------------------------------------------------------------------------
#: outer lip contour of the original (smiling) mouth, to be inpainted away
_SMILE_LIPS = np.array(
    [
        [201.8, 139.5],
        [203.5, 138.6],
        [206.7, 138.7],
        [210.6, 138.8],
        [217.1, 139.3],
        [223.6, 140.5],
        [230.2, 140.0],
        [236.8, 140.4],
        [240.9, 140.8],
        [244.2, 141.1],
        [245.9, 142.2],
        [243.1, 145.8],
        [239.5, 149.3],
        [234.9, 152.6],
        [229.3, 154.5],
        [222.8, 154.9],
        [216.5, 153.7],
        [211.2, 151.1],
        [207.1, 147.3],
        [204.1, 143.4],
    ],
    dtype=np.float32,
)
#: centre of the neutral (closed) mouth; the smile's corners are raised above it
MOUTH_CENTER = (223.8, 144.6)
#: the face is tilted: the line between the mouth corners (and the eyes) slopes 3.5 deg
MOUTH_ANGLE_DEG = 3.5
#: half the neutral mouth width, in photo pixels
MOUTH_HALF_WIDTH = 20.5
#: widest inner-lip gap (fully open "a"), photo pixels
MAX_GAP = 13.0
#: distance from mouth line to chin, photo pixels (chin landmark 152 is at y 175.5)
CHIN_DISTANCE = 31.0
#: centre of the output frame in the photo (between eyebrows and chin)
FACE_CENTER = (224.0, 124.0)
#: photo pixels across the output frame at scale 1 (face about half the frame, as LRS3)
FACE_CROP = 200.0
#: patch (x0, y0, x1, y1) holding every pixel the mouth or jaw may change
PATCH = (168, 126, 282, 216)
#: colours (RGB) of the inside of the mouth: cavity, teeth, tongue
_CAVITY = np.array([62.0, 22.0, 30.0], np.float32)
_TEETH = np.array([232.0, 226.0, 214.0], np.float32)
_TONGUE = np.array([168.0, 78.0, 84.0], np.float32)


@dataclass(frozen=True)
class MouthShape:
    """Articulation parameters of one frame (all roughly in [0, 1]).

    opening: inner-lip gap / jaw drop; width: mouth width factor (rounded < 1 <
    spread); rounding: lip protrusion (rounder, thicker lips); teeth: how much of the
    teeth shows in the gap; press: lips pressed together (thinner, for p/b/m);
    bite: upper teeth on the lower lip (f/v).
    """

    opening: float = 0.0
    width: float = 1.0
    rounding: float = 0.0
    teeth: float = 0.0
    press: float = 0.0
    bite: float = 0.0

    def as_array(self) -> np.ndarray:
        """The parameters as a float vector (order of the dataclass fields)."""
        return np.array([getattr(self, f.name) for f in fields(self)], np.float64)

    @classmethod
    def from_array(cls, values: Sequence[float]) -> "MouthShape":
        """Inverse of :meth:`as_array`."""
        return cls(*(float(v) for v in values))


#: viseme classes and their mouth shapes
VISEMES: dict[str, MouthShape] = {
    "rest": MouthShape(0.0, 1.0, 0.0, 0.0, 0.0, 0.0),
    "closed": MouthShape(0.0, 0.96, 0.0, 0.0, 1.0, 0.0),  # p b m
    "lip_teeth": MouthShape(0.1, 1.0, 0.0, 0.6, 0.0, 1.0),  # f v
    "teeth": MouthShape(0.22, 1.04, 0.0, 1.0, 0.0, 0.0),  # th (T D), s z
    "alveolar": MouthShape(0.26, 1.04, 0.0, 0.7, 0.0, 0.0),  # t d n l
    "post_alveolar": MouthShape(0.28, 0.8, 0.65, 0.9, 0.0, 0.0),  # sh zh ch j
    "back": MouthShape(0.4, 1.0, 0.0, 0.35, 0.0, 0.0),  # k g ng h
    "round_glide": MouthShape(0.12, 0.68, 1.0, 0.0, 0.0, 0.0),  # w r
    "spread": MouthShape(0.3, 1.2, 0.0, 0.9, 0.0, 0.0),  # ee, i, y
    "mid": MouthShape(0.55, 1.06, 0.0, 0.5, 0.0, 0.0),  # e, schwa, er
    "open": MouthShape(1.0, 1.02, 0.0, 0.35, 0.0, 0.0),  # a, ah
    "open_round": MouthShape(0.75, 0.84, 0.6, 0.15, 0.0, 0.0),  # aw, o (lot)
    "round": MouthShape(0.38, 0.7, 1.0, 0.0, 0.0, 0.0),  # oo, u, o
}

# espeak-ng English phoneme mnemonics -> one viseme, or two for glides/diphthongs.
PHONE_VISEMES: dict[str, tuple[str, ...]] = {
    **{p: ("closed",) for p in ("p", "b", "m")},
    **{p: ("lip_teeth",) for p in ("f", "v")},
    **{p: ("teeth",) for p in ("T", "D", "s", "z")},
    **{p: ("alveolar",) for p in ("t", "d", "n", "l", "t#", "d#", "n-", "l/", "l#", "?")},
    **{p: ("post_alveolar",) for p in ("S", "Z", "tS", "dZ")},
    **{p: ("back",) for p in ("k", "g", "N", "h", "x", "n#")},
    **{p: ("round_glide",) for p in ("w", "r", "r-", "W")},
    **{p: ("spread",) for p in ("i", "i:", "I", "I#", "I2", "j", "i@3")},
    **{p: ("mid",) for p in ("e", "E", "@", "@2", "@5", "3", "3:", "a#", "e@", "@L", "V")},
    **{p: ("open",) for p in ("a", "A:", "A", "aa", "A@", "a:")},
    **{p: ("open_round",) for p in ("0", "O", "O2", "O:", "O@", "o@", "Q")},
    **{p: ("round",) for p in ("u:", "U", "u", "o", "o:", "U@", "u@")},
    "aI": ("open", "spread"),
    "aI@": ("open", "spread"),
    "aU": ("open", "round"),
    "eI": ("mid", "spread"),
    "oU": ("mid", "round"),
    "@U": ("mid", "round"),
    "OI": ("open_round", "spread"),
    "i@": ("spread", "mid"),
    "ju:": ("spread", "round"),
}


def visemes_of(symbol: str) -> tuple[str, ...]:
    """Viseme sequence of an espeak-ng phoneme mnemonic (pauses -> ``("rest",)``).

    Unknown symbols fall back on their longest known prefix, then on ``"mid"`` (a
    neutral half-open mouth) rather than failing: espeak-ng accents add rare variants.
    Pure modifier marks (e.g. ``;``, which espeak-ng emits after some word-final
    vowels) have no shape of their own: ``()``, meaning "hold the previous shape".
    """
    if not symbol or symbol.startswith("_"):
        return ("rest",)
    core = symbol.strip("'`,;%=")
    if not core:
        return ()
    if core in PHONE_VISEMES:
        return PHONE_VISEMES[core]
    for k in range(len(core) - 1, 0, -1):
        if core[:k] in PHONE_VISEMES:
            return PHONE_VISEMES[core[:k]]
    return ("mid",)


# ---------------------------------------------------------------------------------
# Articulation track
# ---------------------------------------------------------------------------------
TRACK_RATE = 100  # Hz
SMOOTH_SIGMA_S = 0.018  # coarticulation smoothing (short: keeps p/b/m closures visible)


def mouth_track(phones: Iterable[tuple[str, float, float]], n_frames: int, fps: float = 25.0) -> list[MouthShape]:
    """Mouth shapes at the video frame times for phones ``(symbol, start_s, end_s)``.

    Time outside every phone is "rest" (mouth closed, relaxed).
    """
    duration = n_frames / fps
    n_steps = int(math.ceil(duration * TRACK_RATE)) + 1
    track = np.tile(VISEMES["rest"].as_array(), (n_steps, 1))
    previous = ("rest",)
    for symbol, start, end in phones:
        names = visemes_of(symbol) or previous[-1:]
        previous = names
        bounds = np.linspace(start, end, len(names) + 1)
        for name, a, b in zip(names, bounds[:-1], bounds[1:]):
            i0 = max(0, int(round(a * TRACK_RATE)))
            i1 = min(n_steps, max(i0 + 1, int(round(b * TRACK_RATE))))
            track[i0:i1] = VISEMES[name].as_array()
    track = _gaussian_smooth(track, SMOOTH_SIGMA_S * TRACK_RATE)
    # Frame k shows the mouth at the middle of its 1/fps exposure.
    times = (np.arange(n_frames) + 0.5) / fps * TRACK_RATE
    idx = np.arange(n_steps)
    out = np.stack([np.interp(times, idx, track[:, j]) for j in range(track.shape[1])], 1)
    return [MouthShape.from_array(row) for row in out]


def _gaussian_smooth(track: np.ndarray, sigma: float) -> np.ndarray:
    """Smooth each column with a Gaussian of ``sigma`` steps (edges held)."""
    radius = max(1, int(3 * sigma))
    x = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (x / sigma) ** 2)
    kernel /= kernel.sum()
    padded = np.pad(track, ((radius, radius), (0, 0)), mode="edge")
    return np.stack([np.convolve(padded[:, j], kernel, mode="valid") for j in range(track.shape[1])], 1)


# ---------------------------------------------------------------------------------
# Speaker look and head motion
# ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class FaceStyle:
    """How one "speaker" looks: framing, colour, lips."""

    scale: float = 1.0  # >1 = face larger in the frame
    shift_x: float = 0.0  # output pixels
    shift_y: float = 0.0
    angle_deg: float = 0.0  # in-plane head rotation
    brightness: float = 0.0  # added to 0..255 values
    contrast: float = 1.0
    tint: tuple[float, float, float] = (1.0, 1.0, 1.0)  # RGB gains
    lip_color: tuple[float, float, float] = (188.0, 112.0, 110.0)
    mouth_width: float = 1.0  # speaker's mouth width factor


def random_style(rng: np.random.Generator) -> FaceStyle:
    """Draw a speaker look with small variations (the face must stay detectable)."""
    return FaceStyle(
        scale=float(rng.uniform(0.9, 1.1)),
        shift_x=float(rng.uniform(-8, 8)),
        shift_y=float(rng.uniform(-6, 6)),
        angle_deg=float(rng.uniform(-5, 5)),
        brightness=float(rng.uniform(-22, 18)),
        contrast=float(rng.uniform(0.85, 1.12)),
        tint=tuple(float(v) for v in rng.uniform(0.92, 1.06, size=3)),
        lip_color=tuple(float(v) for v in (rng.uniform(172, 205), rng.uniform(92, 125), rng.uniform(92, 122))),
        mouth_width=float(rng.uniform(0.92, 1.08)),
    )


def head_motion(n_frames: int, rng: np.random.Generator, amplitude: float = 1.5) -> np.ndarray:
    """Slow, smooth head drift: ``(n_frames, 3)`` of (dx px, dy px, angle deg)."""
    steps = rng.normal(0.0, 1.0, size=(n_frames + 24, 3))
    smooth = _gaussian_smooth(np.cumsum(steps, axis=0), 6.0)[12 : 12 + n_frames]
    smooth -= smooth.mean(axis=0, keepdims=True)
    peak = np.maximum(np.abs(smooth).max(axis=0, keepdims=True), 1e-6)
    # Bounded amplitude whatever the clip length; rotation drift is in degrees.
    return smooth / peak * np.array([[amplitude, amplitude, amplitude * 0.6]])


# ---------------------------------------------------------------------------------
# Rendering
# ---------------------------------------------------------------------------------
@functools.lru_cache(maxsize=1)
def _mouthless_photo() -> np.ndarray:
    """The astronaut photo (RGB uint8) with the smiling mouth inpainted away."""
    from skimage import data  # local import: only the renderer needs scikit-image

    photo = np.ascontiguousarray(data.astronaut())
    mask = np.zeros(photo.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(_SMILE_LIPS).astype(np.int32)], 255)
    mask = cv2.dilate(mask, np.ones((5, 5), np.uint8), iterations=1)
    out = cv2.inpaint(photo, mask, 6, cv2.INPAINT_TELEA)
    # Inpainting leaves flat skin; a light blur of the area blends its edges.
    blurred = cv2.GaussianBlur(out, (0, 0), 1.5)
    soft = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), 2.0)[..., None]
    return np.round(out * (1 - soft) + blurred * soft).astype(np.uint8)


class TalkingFace:
    """Renders frames of one speaker's face for given mouth shapes."""

    _SHIFT = 4  # fillPoly sub-pixel precision: coordinates in 1/16 pixel

    def __init__(self, style: FaceStyle = FaceStyle(), size: int = 192) -> None:
        if size < 64 or size % 2:
            raise ValueError("frame size must be even and >= 64 (H.264 4:2:0)")
        self.style = style
        self.size = size
        self._base = _mouthless_photo()
        self._buffer = self._base.copy()
        x0, y0, x1, y1 = PATCH
        self._patch_base = self._base[y0:y1, x0:x1].astype(np.float32)
        self._lut = self._colour_lut(style)
        # Local mouth frame: u along the mouth (to the right), v down, in photo pixels.
        a = math.radians(MOUTH_ANGLE_DEG)
        self._axis_u = np.array([math.cos(a), math.sin(a)])
        self._axis_v = np.array([-math.sin(a), math.cos(a)])
        py, px = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        self._grid = (px, py)
        rel = np.stack([px - MOUTH_CENTER[0], py - MOUTH_CENTER[1]], -1)
        self._local_u = rel @ self._axis_u.astype(np.float32)
        self._local_v = rel @ self._axis_v.astype(np.float32)
        self._jaw_weight = self._jaw_weights()
        shade = 1.0 + 0.09 * np.clip(self._local_v / 5.0, -1.0, 1.0)
        self._lip_rgb = (shade[..., None] * np.array(style.lip_color, np.float32)).astype(np.float32)

    # ---- colour and framing ------------------------------------------------------
    @staticmethod
    def _colour_lut(style: FaceStyle) -> np.ndarray:
        """One 256-entry table per channel applying contrast, brightness and tint."""
        v = np.arange(256, dtype=np.float32)
        chans = [((v - 128) * style.contrast + 128 + style.brightness) * g for g in style.tint]
        return np.clip(np.stack(chans, -1), 0, 255).astype(np.uint8)[None]

    def frame_matrix(self, pose: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
        """2x3 affine map from photo pixels to output pixels for a head pose."""
        dx, dy, dangle = pose
        s = self.style
        zoom = self.size / FACE_CROP * s.scale
        m = cv2.getRotationMatrix2D(FACE_CENTER, s.angle_deg + dangle, zoom)
        m[0, 2] += self.size / 2 - FACE_CENTER[0] + s.shift_x + dx
        m[1, 2] += self.size / 2 - FACE_CENTER[1] + s.shift_y + dy
        return m

    def mouth_box(self, pose: Sequence[float] = (0.0, 0.0, 0.0)) -> tuple[int, int, int, int]:
        """Output-frame box ``(x0, y0, x1, y1)`` around the mouth (lips, teeth, gap)."""
        w = MOUTH_HALF_WIDTH * 1.25 * self.style.mouth_width + 3
        corners = [(-w, -8.0), (w, -8.0), (-w, MAX_GAP + 8.0), (w, MAX_GAP + 8.0)]
        pts = self._to_photo(*np.array(corners).T)
        out = cv2.transform(pts[None].astype(np.float32), self.frame_matrix(pose))[0]
        x0, y0 = np.floor(out.min(0)).astype(int)
        x1, y1 = np.ceil(out.max(0)).astype(int)
        return int(x0), int(y0), int(x1), int(y1)

    # ---- mouth drawing ------------------------------------------------------------
    def _to_photo(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Local mouth coordinates (arrays of u and v) -> ``(N, 2)`` photo pixels."""
        u = np.atleast_1d(np.asarray(u, np.float64))[:, None]
        v = np.atleast_1d(np.asarray(v, np.float64))[:, None]
        return np.asarray(MOUTH_CENTER) + u * self._axis_u + v * self._axis_v

    def _jaw_weights(self) -> np.ndarray:
        """How much each patch pixel follows the jaw (1 = chin, 0 = still skin).

        Zero above the mouth line and at the patch border, so that the warped patch
        joins the unchanged photo seamlessly.
        """
        u, v = np.abs(self._local_u), self._local_v
        along_v = np.clip((v + 1.0) / 4.0, 0, 1) * np.clip((CHIN_DISTANCE + 22.0 - v) / 16.0, 0, 1)
        across = np.clip((44.0 - u) / 18.0, 0, 1)
        w = _smoothstep(along_v) * _smoothstep(across)
        return w.astype(np.float32)

    def _lip_curves(self, shape: MouthShape) -> dict[str, np.ndarray]:
        """Outer/inner lip and teeth outlines, as (N, 2) arrays in photo pixels."""
        half = MOUTH_HALF_WIDTH * self.style.mouth_width * shape.width
        gap = MAX_GAP * max(shape.opening, 0.0)
        u = np.linspace(-1.0, 1.0, 41)
        q = 1.0 - 0.5 * shape.rounding  # rounder lips: elliptic, not lens-shaped, gap
        prof = np.power(np.clip(1 - u**2, 0, 1), q)
        lip = np.sqrt(np.clip(1 - u**2, 0, 1))
        thick = (1 + 0.5 * shape.rounding) * (1 - 0.35 * shape.press)
        bow = 1 - 0.3 * np.exp(-((u / 0.12) ** 2))  # Cupid's bow dip
        inner_up = -0.3 * gap * prof
        inner_low = 0.7 * gap * prof
        outer_up = inner_up - 4.0 * thick * lip * bow
        outer_low = inner_low + 5.5 * thick * (1 - 0.3 * shape.bite) * lip
        # Corners reach a bit beyond the gap's ends.
        corner = half * (1.04 + 0.04 * shape.rounding)
        teeth_h = shape.teeth * min(0.45 * gap, 4.5) + 2.8 * shape.bite
        teeth_low = inner_up + teeth_h * np.power(np.clip(1 - (u / 0.8) ** 2, 0, 1), 0.3)
        tongue_top = inner_low - 0.3 * gap * prof * min(1.0, shape.opening * 1.5)

        def poly(upper: np.ndarray, lower: np.ndarray, width: float) -> np.ndarray:
            # Along the upper curve left to right, back along the lower one.
            us = np.concatenate([u, u[::-1]]) * width
            vs = np.concatenate([upper, lower[::-1]])
            return self._to_photo(us, vs)

        return {
            "lips": poly(outer_up, outer_low, corner),
            "cavity": poly(inner_up, inner_low, half),
            "teeth": poly(inner_up - 0.3, teeth_low, half * 0.8),
            "tongue": poly(tongue_top, inner_low + 0.5, half * 0.7),
            "seam": poly(inner_up - 0.35 * lip, inner_low + 0.35 * lip, half * 0.92),
        }

    def _mask(self, polygon: np.ndarray, blur: float = 0.0) -> np.ndarray:
        """Anti-aliased coverage (float32 0..1, patch-sized) of a photo-pixel polygon."""
        x0, y0, x1, y1 = PATCH
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        pts = np.round((polygon - np.array([x0, y0])) * (1 << self._SHIFT)).astype(np.int32)
        cv2.fillPoly(mask, [pts], 255, lineType=cv2.LINE_AA, shift=self._SHIFT)
        cov = mask.astype(np.float32) / 255.0
        if blur > 0:
            cov = cv2.GaussianBlur(cov, (0, 0), blur)
        return cov[..., None]

    def _draw_mouth(self, shape: MouthShape) -> np.ndarray:
        """The mouth/jaw patch (uint8 RGB) for one mouth shape."""
        gap = MAX_GAP * max(shape.opening, 0.0)
        jaw = 0.7 * gap
        px, py = self._grid
        # Move the skin below the mouth down with the jaw (sample from above).
        map_x = px - (jaw * self._jaw_weight * self._axis_v[0])
        map_y = py - (jaw * self._jaw_weight * self._axis_v[1])
        x0, y0 = PATCH[:2]
        img = cv2.remap(
            self._patch_base,
            (map_x - x0).astype(np.float32),
            (map_y - y0).astype(np.float32),
            cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REPLICATE,
        )
        curves = self._lip_curves(shape)
        # Lips: 85 % opaque so the skin texture shows through; the upper lip is in
        # shadow and the lower one catches the light, as in the photo.
        lips = self._mask(curves["lips"], blur=0.6) * 0.85
        img = img * (1 - lips) + self._lip_rgb * lips
        if gap < 1.5:  # a dark seam where the lips meet
            seam = self._mask(curves["seam"], blur=0.4) * (0.7 * (1 - gap / 1.5))
            img = img * (1 - seam) + _CAVITY * seam
        if gap > 0.05:
            cavity = self._mask(curves["cavity"])
            img = img * (1 - cavity) + _CAVITY * cavity
            if shape.opening > 0.3:
                tongue = np.minimum(self._mask(curves["tongue"], blur=0.8), cavity)
                img = img * (1 - tongue) + _TONGUE * tongue
            teeth = self._mask(curves["teeth"])
            if shape.bite < 0.5:  # teeth show only inside the gap ...
                teeth = np.minimum(teeth, cavity)
            img = img * (1 - teeth) + _TEETH * teeth
        elif shape.bite > 0.3:  # ... or on the lower lip (f, v)
            teeth = self._mask(curves["teeth"])
            img = img * (1 - teeth) + _TEETH * teeth
        return np.clip(img + 0.5, 0, 255).astype(np.uint8)

    def render(self, shape: MouthShape, pose: Sequence[float] = (0.0, 0.0, 0.0)) -> np.ndarray:
        """One RGB frame ``(size, size, 3)`` uint8 with the given mouth and head pose."""
        x0, y0, x1, y1 = PATCH
        self._buffer[y0:y1, x0:x1] = self._draw_mouth(shape)
        frame = cv2.warpAffine(
            self._buffer,
            self.frame_matrix(pose),
            (self.size, self.size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_REFLECT_101,
        )
        return cv2.LUT(frame, self._lut)

    def animate(
        self,
        phones: Iterable[tuple[str, float, float]],
        n_frames: int,
        fps: float = 25.0,
        poses: Optional[np.ndarray] = None,
    ) -> Iterable[np.ndarray]:
        """Yield ``n_frames`` frames of the face saying ``phones`` (symbol, start, end)."""
        shapes = mouth_track(phones, n_frames, fps)
        for k, shape in enumerate(shapes):
            pose = (0.0, 0.0, 0.0) if poses is None else poses[k]
            yield self.render(shape, pose)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    """C1-smooth ramp 0 -> 1 on [0, 1] (avoids visible creases in the jaw warp)."""
    x = np.clip(x, 0, 1)
    return x * x * (3 - 2 * x)
