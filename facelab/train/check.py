"""`facelab dataset check`: the label check (`facelab.label_check`) on a dataset whose classes are people.

A folder of crawled photos per person (the public-figure use) brings namesakes and other people's faces; a
person can also sit in two folders. The check embeds every crop with SFace (cached in DATASET/embeddings/, as
`train classifier --method head` does) and reports crops unlike their class's others and classes that may be
one person. It changes nothing unless asked (`exclude`: the suspect crops leave the dataset, recorded in
`excluded.json`). Meaningless for classes that are not identities (gender, expression...).
"""
from __future__ import annotations

from typing import Any

from ..label_check import check_labels


def check_dataset(path, far: float = 0.001, share: float = 0.5, exclude: bool = False,
                  progress=None) -> dict[str, Any]:
    """The check's findings; with `exclude`, the suspect crops are also recorded in the dataset's `excluded.json`
    and the dataset is rebuilt without them (manifest and split redone; later builds keep them out)."""
    from ..verification import operating_point
    from .data import open_dataset
    from .frozen_features import dataset_features

    ds = open_dataset(path)
    rows = ds.split("all")
    vectors = dataset_features(ds, rows, "sface", progress)
    threshold = operating_point("sface", far=far).threshold
    found = check_labels(vectors, [r["class"] for r in rows], threshold, share)
    suspects = [{"file": rows[s.index]["file"], "source": rows[s.index].get("source"), "class": s.label,
                 "split": rows[s.index]["split"], "similarity": s.similarity, "nearest_other": s.nearest_other,
                 "nearest_similarity": s.nearest_similarity, "reason": s.reason} for s in found.suspects]
    if exclude and suspects:
        from .dataset import exclude_photos, rebuild

        exclude_photos(ds.root, {s["source"]: f"dataset check: {s['reason']}" for s in suspects})
        rebuild(ds.root)
    return {"dataset": str(ds.root), "model": "sface", "far": far, "threshold": found.threshold,
            "excluded": len(suspects) if exclude else 0,
            "crops_checked": found.items_checked, "classes_checked": found.labels_checked,
            "classes_with_one_crop": found.labels_with_one_item, "suspect_crops": suspects,
            "similar_classes": [p.to_dict() for p in found.similar]}
