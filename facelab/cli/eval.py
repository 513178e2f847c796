"""`facelab eval ...`: evaluation protocols."""
from __future__ import annotations

from pathlib import Path

import click

from ..extras import require
from .common import echo_json, handle_errors
from .core import EMBEDDER_CHOICES


@click.group("eval")
def eval_group() -> None:
    """Measure accuracy with standard protocols."""


@eval_group.command("lfw")
@click.option("--root", type=click.Path(file_okay=False), default="../shared/data/lfw", show_default=True,
              help="LFW folder with pairs.txt and images/<Name>/<Name>_NNNN.jpg.")
@click.option("--model", type=EMBEDDER_CHOICES, default="sface", show_default=True,
              help="A built-in embedder or any registered one (facelab/embedders.py EMBEDDERS, facelab models add).")
@click.option("--flip", is_flag=True, help="Average each face with its mirror image.")
@click.option("--detector", type=click.Choice(["yunet", "dlib_hog"]), default="yunet", show_default=True)
@click.option("--folds", type=click.IntRange(2, 10), help="Use only the first N folds (quick check).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="out/eval", show_default=True,
              help="Where the JSON report, scores and ROC plot go.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@handle_errors
def lfw(root, model, flip, detector, folds, out_dir, as_json):
    """LFW View 2: 10 folds, threshold chosen on 9, tested on the 10th; accuracy, AUC, TAR@FAR=1e-3."""
    require("eval", "facelab eval lfw")  # before embedding 13,000 images, not after
    from tqdm import tqdm

    from ..evaluation.lfw import run_lfw

    report = run_lfw(Path(root), model=model, flip=flip, detector=detector, folds=folds, out_dir=Path(out_dir),
                     progress=lambda xs: tqdm(xs, desc="embedding LFW", unit="img", leave=False, disable=None))
    if as_json:
        echo_json(report)
        return
    click.echo(f"LFW View 2 ({report['images_version']}), model {report['model']}, detector {report['detector']}")
    click.echo(f"  accuracy      {100 * report['mean_accuracy']:.2f} % +- {100 * report['std_accuracy']:.2f} "
               f"over {len(report['fold_accuracies'])} folds")
    click.echo(f"  AUC           {report['auc']:.5f}")
    click.echo(f"  TAR@FAR=1e-3  {100 * report['tar_at_far_1e-3']:.2f} %")
    click.echo(f"  no face found {report['no_face_found']} of {report['images']} images ({report['no_face_handling']})")
    click.echo(f"  speed         {report['ms_per_image']['total']:.1f} ms/image")
    for f in report.get("files", []):
        click.echo(f"  wrote {f}")
