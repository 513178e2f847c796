"""Head pose and quality from what detection already gives (5 landmarks, the aligned crop)."""
from __future__ import annotations

import numpy as np

from .faces import Pose, Quality

# A generic 3D face (mm, x right, y down, z away from the camera; nose tip at the origin), in LANDMARK_NAMES
# order. Average adult proportions; good to a few degrees, which is what pose filters need.
_FACE_3D = np.array(
    [(-32.0, -33.0, 26.0), (32.0, -33.0, 26.0), (0.0, 0.0, 0.0), (-25.0, 29.0, 24.0), (25.0, 29.0, 24.0)],
    dtype=np.float64,
)


def estimate_pose(landmarks: np.ndarray, image_size: tuple[int, int]) -> Pose:
    """Yaw and pitch from a PnP fit of the generic face; roll from the eye line (more robust than PnP's)."""
    import cv2

    pts = np.asarray(landmarks, dtype=np.float64).reshape(5, 2)
    # Only the rotation matters, so use a virtual camera centred on the face with a focal length in
    # proportion to the face (as if seen from ~75 cm). A camera of the whole photo makes a small face's
    # points nearly coincident, and SQPnP rejects them.
    eye_px = max(float(np.linalg.norm(pts[1] - pts[0])), 1.0)
    f = 12.0 * eye_px
    cx, cy = pts.mean(0)
    camera = np.array([[f, 0, cx], [0, f, cy], [0, 0, 1]], dtype=np.float64)
    try:
        ok, rvec, _ = cv2.solvePnP(_FACE_3D, pts, camera, None, flags=cv2.SOLVEPNP_SQPNP)
    except cv2.error:
        ok = False
    if ok:
        rot, _ = cv2.Rodrigues(rvec)
        yaw = float(np.degrees(np.arctan2(-rot[2, 0], np.hypot(rot[0, 0], rot[1, 0]))))
        pitch = float(np.degrees(np.arctan2(rot[2, 1], rot[2, 2])))
    else:  # degenerate landmarks (all on a line)
        yaw = pitch = float("nan")
    dx, dy = pts[1] - pts[0]
    roll = float(np.degrees(np.arctan2(dy, dx)))
    return Pose(yaw=yaw, pitch=-pitch, roll=roll)


def estimate_quality(box, landmarks: np.ndarray, aligned: np.ndarray) -> Quality:
    import cv2

    grey = cv2.cvtColor(aligned, cv2.COLOR_RGB2GRAY)
    sharpness = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    eye_distance = float(np.linalg.norm(np.asarray(landmarks[1]) - np.asarray(landmarks[0])))
    return Quality(size=float(min(box[2], box[3])), eye_distance=eye_distance, sharpness=sharpness)
