"""The extension points: a new embedder or detector added through the public API runs the whole pipeline, and
facelab.compare gives verify's answer from stored embeddings. docs/architecture.md walks through the embedder."""
from __future__ import annotations

import numpy as np
import pytest

import facelab
from facelab.errors import FacelabError, ModelError

from .conftest import lfw_image

TINY = "grey16_test"


class Grey16Embedder:
    """A deliberately tiny embedder: the 112x112 aligned crop in grey, shrunk to 16x16, standardised, unit length.
    Not a face recogniser worth using; it shows what an embedder must provide (facelab.Embedder)."""

    dim = 256

    def __init__(self, flip: bool = False):
        self.flip = flip
        self.name = TINY + ("+flip" if flip else "")

    def _vector(self, crop: np.ndarray) -> np.ndarray:
        import cv2

        grey = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY).astype(np.float32)
        small = cv2.resize(grey, (16, 16), interpolation=cv2.INTER_AREA).ravel()
        if self.flip:
            small = (small + cv2.resize(grey[:, ::-1], (16, 16), interpolation=cv2.INTER_AREA).ravel()) / 2
        small -= small.mean()
        return small / max(float(np.linalg.norm(small)), 1e-12)

    def embed(self, rgb: np.ndarray, faces: list) -> np.ndarray:
        from facelab.align import align_face

        crops = [f.aligned if f.aligned is not None else align_face(rgb, f.landmarks) for f in faces]
        return np.array([self._vector(c) for c in crops], np.float32).reshape(len(faces), self.dim)


@pytest.fixture()
def tiny_embedder():
    from facelab.embedders import EMBEDDERS
    from facelab.pipeline import get_embedder, shared_analysis

    facelab.register_embedder(TINY, Grey16Embedder)
    yield TINY
    EMBEDDERS.pop(TINY, None)
    get_embedder.cache_clear()
    shared_analysis.cache_clear()


def _moved(astronaut: np.ndarray) -> np.ndarray:
    """The same face in another photo: cropped off-centre, scaled by 1.3 and a little darker."""
    import cv2

    crop = astronaut[20:400, 100:460]
    return np.clip(cv2.resize(crop, None, fx=1.3, fy=1.3) * 0.9, 0, 255).astype(np.uint8)


def test_a_registered_embedder_verifies_two_photos(tiny_embedder, astronaut):
    result = facelab.verify(astronaut, _moved(astronaut), model=tiny_embedder, threshold=0.7)
    assert result.model == tiny_embedder
    assert result.same and result.similarity > 0.8
    assert result.point.threshold == 0.7 and result.point.far is None  # uncalibrated: the given threshold
    # The pipeline really ran the new class: embed gives its 256-d vectors under its name, and their cosine is
    # the similarity verify reported.
    (a,), (b,) = facelab.embed(astronaut, model=tiny_embedder), facelab.embed(_moved(astronaut), model=tiny_embedder)
    assert a.embedding.shape == (256,) and a.embedding_model == tiny_embedder
    assert float(a.embedding @ b.embedding) == pytest.approx(result.similarity, abs=1e-5)
    assert facelab.compare(a, b, threshold=0.7).to_dict() == {**result.to_dict(), "faces": []}


def test_a_registered_embedder_tells_two_people_apart_less_well_than_one(tiny_embedder, lfw, astronaut):
    other = lfw_image(lfw, "Abdullah_Gul", 1)
    same = facelab.verify(astronaut, _moved(astronaut), model=tiny_embedder, threshold=0.7)
    different = facelab.verify(astronaut, other, model=tiny_embedder, threshold=0.7)
    assert different.similarity < same.similarity - 0.3
    assert not different.same


def test_flip_variant_of_a_registered_embedder_has_its_own_name(tiny_embedder, astronaut):
    (face,) = facelab.embed(astronaut, model=tiny_embedder, flip=True)
    assert face.embedding_model == tiny_embedder + "+flip"
    (plain,) = facelab.embed(astronaut, model=tiny_embedder)
    assert not np.allclose(face.embedding, plain.embedding)


def test_an_uncalibrated_embedder_needs_a_threshold(tiny_embedder, astronaut):
    with pytest.raises(ModelError, match="no calibrated threshold"):
        facelab.verify(astronaut, astronaut, model=tiny_embedder)


def test_a_factory_that_builds_no_embedder_is_refused_by_name(astronaut):
    from facelab.embedders import EMBEDDERS
    from facelab.pipeline import get_embedder

    class NotAnEmbedder:
        name = "broken_test"

        def __init__(self, flip: bool = False):
            pass

    facelab.register_embedder("broken_test", NotAnEmbedder)
    try:
        with pytest.raises(ModelError, match=r"embedding model 'broken_test'.*missing: dim, embed"):
            facelab.embed(astronaut, model="broken_test")
    finally:
        EMBEDDERS.pop("broken_test", None)
        get_embedder.cache_clear()


def test_registration_refuses_taken_and_variant_names():
    with pytest.raises(ModelError, match="already registered"):
        facelab.register_embedder("sface", Grey16Embedder)
    with pytest.raises(ModelError, match="plain name"):
        facelab.register_embedder("grey+flip", Grey16Embedder)
    with pytest.raises(ModelError, match="already registered"):
        facelab.register_detector("yunet", object)


def test_a_registered_detector_feeds_the_pipeline(astronaut):
    """A detector that reports one fixed face: the pipeline aligns it, measures pose and embeds it with SFace."""
    from facelab.detectors import DETECTORS
    from facelab.interfaces import Detection
    from facelab.pipeline import get_detector, shared_analysis

    landmarks = np.array([[200.1, 101.8], [247.2, 102.6], [220.3, 124.7], [198.9, 143.2], [239.8, 143.9]])

    class FixedFace:
        name = "fixed_test"

        def detect(self, rgb):
            return [Detection(box=np.array([178.0, 62.6, 90.4, 113.9]), score=0.5, landmarks=landmarks)]

    facelab.register_detector("fixed_test", FixedFace)
    try:
        (face,) = facelab.detect(astronaut, detector="fixed_test")
        assert face.score == 0.5 and face.aligned.shape == (112, 112, 3) and abs(face.pose.yaw) < 10
        (yunet,) = facelab.embed(astronaut)
        mine = shared_analysis(detector="fixed_test").get(astronaut)[0]
        assert float(mine.embedding @ yunet.embedding) > 0.95  # the same face, aligned from near-identical points
    finally:
        DETECTORS.pop("fixed_test", None)
        get_detector.cache_clear()
        shared_analysis.cache_clear()


def test_every_shipped_model_fills_its_interface():
    from facelab.detectors import DETECTORS
    from facelab.embedders import EMBEDDERS, OnnxEmbedder
    from facelab.interfaces import Detector, Embedder
    from facelab.pipeline import get_detector, get_embedder

    for cls in (*EMBEDDERS.values(), OnnxEmbedder):
        assert Embedder in cls.__mro__, cls
    for cls in DETECTORS.values():
        assert Detector in cls.__mro__, cls
    assert isinstance(get_embedder("sface"), Embedder) and isinstance(get_detector("yunet"), Detector)


# -- facelab.compare: verify's answer from two stored embeddings --------------------------------------------------

def test_compare_gives_verify_answer_from_stored_vectors(astronaut):
    moved = _moved(astronaut)
    result = facelab.verify(astronaut, moved)
    (a,), (b,) = facelab.embed(astronaut), facelab.embed(moved)
    stored_a = [round(float(v), 6) for v in a.embedding]  # as written by --json / a gallery export
    answer = facelab.compare(stored_a, b.embedding, model="sface")
    assert answer.to_dict() == {**result.to_dict(), "faces": []}
    assert answer.same and answer.point.threshold == result.point.threshold
    strict = facelab.compare(a, b, far=1e-5)  # stricter than the FAR 1e-4 default
    assert strict.to_dict() == {**facelab.verify(astronaut, moved, far=1e-5).to_dict(), "faces": []}
    assert strict.point.far <= 1e-5 and strict.point.threshold > answer.point.threshold


def test_compare_refuses_what_is_not_two_embeddings_of_one_model(astronaut):
    (a,) = facelab.embed(astronaut)
    (d,) = facelab.embed(astronaut, model="dlib_resnet")
    with pytest.raises(ModelError, match="different models"):
        facelab.compare(a, d)
    with pytest.raises(ModelError, match="embedded with 'sface', not 'dlib_resnet'"):
        facelab.compare(a, d, model="dlib_resnet")
    with pytest.raises(FacelabError, match="not a unit vector"):
        facelab.compare(a.embedding * 3, a.embedding)
    with pytest.raises(FacelabError, match="differ in size"):
        facelab.compare(a.embedding, np.r_[a.embedding, 0.0])
    with pytest.raises(ModelError, match="have 128 numbers"):
        facelab.compare(np.r_[a.embedding, a.embedding] / np.sqrt(2), np.r_[a.embedding, a.embedding] / np.sqrt(2))
    with pytest.raises(ModelError, match="unknown embedding model"):
        facelab.compare(a.embedding, a.embedding, model="nope", threshold=0.5)
    with pytest.raises(FacelabError, match="no embedding"):
        facelab.compare(facelab.detect(astronaut)[0], a)
