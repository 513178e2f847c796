"""The optional dlib HOG detector, and verify's face selection and operating points."""
from __future__ import annotations

import numpy as np
import pytest

import facelab
from facelab.errors import ModelError, NoFaceError


def test_dlib_hog_backend_finds_the_astronaut_with_usable_landmarks(astronaut):
    faces = facelab.detect(astronaut, detector="dlib_hog", min_score=0.6)
    assert len(faces) >= 1
    main = max(faces, key=lambda f: f.area)
    cx, cy = main.center
    assert 180 < cx < 270 and 60 < cy < 180  # the same face YuNet finds
    # eyes level and left of right, nose between them: alignment will work
    assert main.landmarks[0][0] < main.landmarks[2][0] < main.landmarks[1][0]
    assert abs(main.pose.roll) < 10


def test_verify_picks_a_requested_face_and_reports_it(astronaut):
    import cv2

    # Two copies of the astronaut side by side: two faces; ask for each explicitly.
    pair = np.hstack([astronaut, cv2.resize(astronaut, (512, 512))[:, ::-1]])
    result = facelab.verify(pair, astronaut, face_a=1, threshold=0.3)
    assert result.faces[0]["face"] == 1 and result.faces[0]["of"] == 2
    assert result.same
    with pytest.raises(NoFaceError, match="face 5 requested"):
        facelab.verify(pair, astronaut, face_a=5, threshold=0.3)


def test_far_targets_pick_stricter_thresholds():
    from facelab.verification import operating_point

    loose = operating_point("sface", far=0.01)
    strict = operating_point("sface", far=0.001)
    default = operating_point("sface")
    assert strict.threshold > loose.threshold
    assert strict.far <= 0.001 and loose.far <= 0.01
    assert default.far is not None and 0 < default.threshold < 1
    assert operating_point("sface", threshold=0.42).threshold == 0.42
    with pytest.raises(ModelError, match="no calibrated threshold"):
        operating_point("no-such-model")
