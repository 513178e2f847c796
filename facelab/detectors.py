"""Face detectors. Each returns raw detections (box, score, 5 landmarks) in input-image pixels.

YuNet (default) sees faces from about 10 px to the size of its input. To find both a face that fills a
selfie and the small faces of a group photo, `YuNetDetector` runs up to three passes and merges them:
1. the whole photo, downscaled so its longer side is at most `max_side`;
2. only if pass 1 found nothing: the photo padded by half its size and downscaled to 320 px, so a face that
   fills (or overflows) the frame becomes a normal-sized face with context around it;
3. only for large photos: overlapping tiles at up to `tile_side` resolution, for faces too small to survive
   the downscale of pass 1.
"""
from __future__ import annotations

import threading
from typing import Any

import numpy as np

from .images import to_bgr
from .interfaces import Detection, Detector, DetectorFactory
from .models.registry import get_model, verify_model
from .settings import apply_to_opencv

# Columns of YuNet's output rows: x, y, w, h, then 5 (x, y) landmarks, then the score.
_XS = [0, 4, 6, 8, 10, 12]
_YS = [1, 5, 7, 9, 11, 13]


# YuNet's landmarks are replaced by a re-detection on the de-rotated face (YuNetDetector._fix_roll) when dlib's
# eye line differs from YuNet's by this many degrees. Measured on LFW View 2 (benchmarks/lfw_verify.py, SFace):
# never 99.38 %, at 4 degrees 99.37 % (14 % of faces re-detected), at 6 degrees 99.37 % (6 %), at 8 99.30 %:
# all within 5 pairs of 6,000, i.e. the refinement neither helps nor hurts LFW's upright faces. 6 degrees keeps
# it for heads tilted by ~7 degrees or more (where YuNet reads 15 degrees as ~3) and re-detects fewer faces.
ROLL_TOLERANCE = 6.0


PASS2_SOURCE = 1280  # px: the longer side a big photo is shrunk to before pass 2 pads it


class YuNetDetector(Detector):
    name = "yunet"

    def __init__(self, score_threshold: float = 0.6, nms_threshold: float = 0.3, max_side: int = 640,
                 tile_side: int = 1920, tile: int = 640, refine_roll: bool = True,
                 roll_tolerance: float = ROLL_TOLERANCE):
        import cv2

        self.refine_roll = refine_roll
        self.roll_tolerance = roll_tolerance
        self._shape: Any = None  # dlib 5-point predictor, loaded on first use
        self.score_threshold = score_threshold
        self.nms_threshold = nms_threshold
        self.max_side = max_side
        self.tile_side = tile_side
        self.tile = tile
        self._path = str(verify_model("yunet"))
        apply_to_opencv()
        self._net = cv2.FaceDetectorYN.create(self._path, "", (320, 320), score_threshold, nms_threshold, 5000)
        self._lock = threading.Lock()  # FaceDetectorYN keeps per-call state (input size)

    def _run(self, bgr: np.ndarray) -> np.ndarray:
        h, w = bgr.shape[:2]
        with self._lock:
            self._net.setInputSize((w, h))
            _, out = self._net.detect(bgr)
        return np.zeros((0, 15), np.float32) if out is None else out

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        import cv2

        bgr = to_bgr(rgb)
        h, w = bgr.shape[:2]
        found: list[np.ndarray] = []

        # Pass 1: whole photo. Tiny photos are upscaled so faces reach YuNet's comfortable range.
        scale = min(1.0, self.max_side / max(h, w))
        if max(h, w) < 160:
            scale = 160 / max(h, w)
        found.append(self._scaled(bgr, scale, 0, 0))

        # Pass 2: a face that fills the frame.
        if not len(found[0]):
            # Padding a big photo at full size would need 4x its memory (a 49 MP photo: +590 MB); shrink it first
            # to PASS2_SOURCE px (still 4x the resolution this pass looks at), then pad. Smaller photos as before.
            s0 = min(1.0, PASS2_SOURCE / max(h, w))
            small = cv2.resize(bgr, None, fx=s0, fy=s0, interpolation=cv2.INTER_AREA) if s0 < 1 else bgr
            pad = max(small.shape[:2]) // 2
            padded = cv2.copyMakeBorder(small, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(127, 127, 127))
            s2 = 320 / max(padded.shape[:2])
            dets = self._scaled(padded, s2, -pad, -pad)
            if s0 < 1 and len(dets):
                dets[:, :14] /= s0
            # This pass exists for big faces; on busy or empty padding it can hallucinate small ones.
            found.append(dets[np.minimum(dets[:, 2], dets[:, 3]) >= 0.3 * min(h, w)])

        # Pass 3: tiles over big photos, for small faces.
        if max(h, w) > self.max_side * 1.5:
            s3 = min(1.0, self.tile_side / max(h, w))
            big = cv2.resize(bgr, None, fx=s3, fy=s3, interpolation=cv2.INTER_AREA) if s3 < 1 else bgr
            bh, bw = big.shape[:2]
            step = self.tile - self.tile // 5
            for y0 in range(0, max(1, bh - self.tile // 5), step):
                for x0 in range(0, max(1, bw - self.tile // 5), step):
                    tile = big[y0:y0 + self.tile, x0:x0 + self.tile]
                    dets = self._run(np.ascontiguousarray(tile))
                    # Big faces are pass 1's job; a tile sees only part of them and misplaces the box.
                    dets = dets[np.maximum(dets[:, 2], dets[:, 3]) < self.tile / 3]
                    if len(dets):
                        dets = dets.copy()
                        dets[:, _XS] += x0
                        dets[:, _YS] += y0
                        dets[:, :14] /= s3
                        found.append(dets)

        merged = _merge(np.concatenate(found), self.score_threshold, self.nms_threshold)
        if self.refine_roll:
            merged = [self._fix_roll(bgr, d) for d in merged]
        return merged

    def _fix_roll(self, bgr: np.ndarray, det: Detection) -> Detection:
        """YuNet's (int8) landmarks lag behind a tilted head: at 15 degrees of roll they report ~3.
        dlib's 5-point predictor reads the tilt well (1.5 ms), so when the two disagree the face is turned
        upright by dlib's angle, YuNet is run again on that crop, and its landmarks are mapped back."""
        import cv2

        roll = self._dlib_roll(bgr, det)
        lm = det.landmarks
        yunet_roll = float(np.degrees(np.arctan2(*(lm[1] - lm[0])[::-1])))
        if roll is None or not self.use_refined(yunet_roll, roll):
            return det
        x, y, w, h = det.box
        cx, cy = x + w / 2, y + h / 2
        side = 320
        scale = side / (2.2 * max(w, h))
        m = cv2.getRotationMatrix2D((cx, cy), roll, scale)  # positive angle turns the face back upright
        m[:, 2] += (side / 2 - cx, side / 2 - cy)
        crop = cv2.warpAffine(bgr, m, (side, side), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        redo = self._run(crop)
        if not len(redo):
            return det
        centres = redo[:, :2] + redo[:, 2:4] / 2
        best = redo[int(np.argmin(np.linalg.norm(centres - side / 2, axis=1)))]
        inv = cv2.invertAffineTransform(m)
        pts = best[4:14].reshape(5, 2)
        mapped = pts @ inv[:, :2].T + inv[:, 2]
        return Detection(box=det.box, score=det.score, landmarks=mapped.astype(np.float64))

    def use_refined(self, yunet_roll: float, dlib_roll: float) -> bool:
        """Whether to replace YuNet's landmarks by the re-detection on the de-rotated face."""
        if dlib_roll is None or not np.isfinite(dlib_roll):
            return False
        return abs(dlib_roll - yunet_roll) >= self.roll_tolerance

    def _dlib_roll(self, bgr: np.ndarray, det: Detection) -> float | None:
        try:
            import dlib
        except ImportError:  # dlib-bin is a dependency; without it landmarks stay as YuNet gives them
            return None
        if self._shape is None:
            self._shape = dlib.shape_predictor(str(verify_model("dlib_shape5")))
        x, y, w, h = det.box
        rect = dlib.rectangle(int(x), int(y), int(x + w), int(y + h))
        shape = self._shape(np.ascontiguousarray(bgr[:, :, ::-1]), rect)
        p = np.array([[shape.part(i).x, shape.part(i).y] for i in range(4)], dtype=np.float64)
        img_left, img_right = (p[2] + p[3]) / 2, (p[0] + p[1]) / 2
        dx, dy = img_right - img_left
        return float(np.degrees(np.arctan2(dy, dx)))

    def _scaled(self, bgr: np.ndarray, scale: float, dx: float, dy: float) -> np.ndarray:
        import cv2

        if abs(scale - 1.0) > 1e-6:
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=interp)
        dets = self._run(bgr)
        if len(dets):
            dets = dets.copy()
            dets[:, :14] /= scale
            dets[:, _XS] += dx
            dets[:, _YS] += dy
        return dets


def _merge(dets: np.ndarray, score_threshold: float, nms_threshold: float) -> list[Detection]:
    import cv2

    if not len(dets):
        return []
    keep = cv2.dnn.NMSBoxes(dets[:, :4].tolist(), dets[:, 14].tolist(), score_threshold, nms_threshold)
    out = []
    for i in np.asarray(keep).reshape(-1):
        d = dets[int(i)]
        out.append(Detection(box=d[:4].astype(np.float64), score=float(d[14]),
                             landmarks=d[4:14].reshape(5, 2).astype(np.float64)))
    return out


class DlibHOGDetector(Detector):
    """dlib's HOG frontal detector + its 5-point predictor, mapped to facelab's 5 landmarks.

    dlib's 5 points are the outer/inner corners of each eye and the base of the nose; facelab's are eye
    centres, nose tip and mouth corners, so eyes are the corner midpoints and the mouth corners are placed by
    average face proportions. Good enough to align; YuNet's landmarks are better.
    """

    name = "dlib_hog"

    def __init__(self, upsample: int = 1):
        import dlib

        get_model("dlib_hog")
        self._detector = dlib.get_frontal_face_detector()
        self._shape = dlib.shape_predictor(str(verify_model("dlib_shape5")))
        self.upsample = upsample

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        rects, scores, _ = self._detector.run(rgb, self.upsample, 0.0)
        out = []
        for rect, score in zip(rects, scores):
            shape = self._shape(rgb, rect)
            p = np.array([[shape.part(i).x, shape.part(i).y] for i in range(5)], dtype=np.float64)
            eye_img_right = (p[0] + p[1]) / 2  # dlib points 0-1: the eye on the image's right
            eye_img_left = (p[2] + p[3]) / 2
            nose = p[4]
            eye_mid = (eye_img_left + eye_img_right) / 2
            across = eye_img_right - eye_img_left
            down = nose - eye_mid
            mouth_mid = eye_mid + down * 1.9
            lms = np.array([eye_img_left, eye_img_right, nose - down * 0.15,
                            mouth_mid - across * 0.4, mouth_mid + across * 0.4])
            box = np.array([rect.left(), rect.top(), rect.width(), rect.height()], dtype=np.float64)
            out.append(Detection(box=box, score=float(1 / (1 + np.exp(-score))), landmarks=lms))
        return out


# name -> how to build it. A new detector: a class that fills `Detector`, plus one entry here (or, from outside
# the package, `facelab.register_detector`).
DETECTORS: dict[str, DetectorFactory] = {"yunet": YuNetDetector, "dlib_hog": DlibHOGDetector}

