"""`gallery check`: the label check (`facelab.label_check`) on a gallery's embeddings, person by person.

Photos filed under the wrong person (a namesake, a group photo's other face) and one person under two names.
Nothing is changed: the report names photo ids for `gallery remove` and pairs for `gallery merge`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from ..label_check import SimilarPeople, check_labels

if TYPE_CHECKING:  # pragma: no cover
    from . import Gallery


@dataclass
class SuspectPhoto:
    photo_id: int
    person: str
    source: str | None
    similarity: float        # to the person's template without this photo
    nearest_other: str | None
    nearest_similarity: float | None
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class GalleryCheck:
    model: str
    far: float
    threshold: float
    photos_checked: int
    people_checked: int
    people_with_one_photo: int
    photos: list[SuspectPhoto] = field(default_factory=list)
    people: list[SimilarPeople] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.photos and not self.people

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("photos", "people")}
        return {**out, "suspect_photos": [p.to_dict() for p in self.photos],
                "similar_people": [p.to_dict() for p in self.people]}


def check_gallery(gallery: Gallery, far: float = 0.001, share: float = 0.5,
                  neighbours: int = 5) -> GalleryCheck:
    """Suspect photos (worst first) and pairs of people who may be one person (most alike first)."""
    from .enrol import match_threshold

    photo_ids, person_ids, vectors = gallery.store.vectors()
    names = gallery.person_names()
    found = check_labels(vectors, [names[int(p)] for p in person_ids], match_threshold(gallery.model.name, far),
                         share, neighbours)
    photos = []
    for s in found.suspects:
        record = gallery.store.photo(int(photo_ids[s.index]))
        photos.append(SuspectPhoto(int(photo_ids[s.index]), s.label, record.source if record else None,
                                   s.similarity, s.nearest_other, s.nearest_similarity, s.reason))
    return GalleryCheck(gallery.model.name, far, found.threshold, found.items_checked, found.labels_checked,
                        found.labels_with_one_item, photos, found.similar)
