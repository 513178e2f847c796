"""`facelab dataset ...`, `facelab train ...`, `facelab eval classifier`, `facelab models add`: the training lab."""
from __future__ import annotations

import sys
from pathlib import Path

import click

from ..extras import MissingExtra, require
from ..train import DatasetError
from .common import echo_json, fail, finish_batch, handle_errors, record_failure
from .core import models
from .eval import eval_group

AUGMENT_HELP = "Comma list of brightness,contrast,crop,flip,grayscale,rotate (or none)."


def _check_augment(ctx, param, value):
    if value is None:
        return value
    try:
        require("train", ctx.command_path)
    except MissingExtra as err:  # options are parsed before the command's own error handling starts
        fail(err)
    from ..train.augment import AUGMENTATIONS

    bad = [n for n in value.split(",") if n.strip() and n.strip() not in (*AUGMENTATIONS, "none")]
    if bad:
        raise click.BadParameter(f"unknown {', '.join(bad)}; known: {', '.join(AUGMENTATIONS)}")
    return value


@click.group()
def dataset() -> None:
    """Build face datasets from folders of photos (one folder per class)."""


@dataset.command("build")
@click.argument("raw", type=click.Path(file_okay=False))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--size", type=int, default=112, show_default=True,
              help="Crop side in pixels (aligned, ArcFace template).")
@click.option("--largest", is_flag=True,
              help="Photos with several usable faces: keep the main one instead of dropping.")
@click.option("--min-size", type=float, default=40, show_default=True, help="Smallest face (pixels, shorter box side).")
@click.option("--min-score", type=float, default=0.7, show_default=True, help="Lowest detector score.")
@click.option("--max-yaw", type=float, default=45, show_default=True)
@click.option("--max-pitch", type=float, default=40, show_default=True)
@click.option("--max-roll", type=float, default=45, show_default=True)
@click.option("--min-sharpness", type=float, default=10, show_default=True,
              help="Variance of the Laplacian of the crop.")
@click.option("--near-dup-bits", type=int, default=3, show_default=True,
              help="Near duplicates: 64-bit difference hashes of the crops differ in at most this many bits "
                   "(-1: off)...")
@click.option("--near-dup-corr", type=float, default=0.95, show_default=True,
              help="... and their 16x16 grey thumbnails correlate at least this much.")
@click.option("--min-per-class", type=int, default=3, show_default=True, help="Drop classes left with fewer photos.")
@click.option("--val", type=float, default=0.1, show_default=True, help="Share of each class for validation.")
@click.option("--test", type=float, default=0.1, show_default=True, help="Share of each class for test (1 = all test).")
@click.option("--group", help="Keep each person on one side of the split: 'subfolder' (RAW/class/person/photo) or "
                              "a regex whose group 1 names the person in the file name.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the whole report as JSON.")
@handle_errors
def build(raw, out, size, largest, min_size, min_score, max_yaw, max_pitch, max_roll, min_sharpness, near_dup_bits,
          near_dup_corr, min_per_class, val, test, group, seed, as_json):
    """Detect, align, filter, dedupe and split RAW/<class>/<photos> into OUT (resumable: rerun to continue).

    OUT gets crops/<class>/*.jpg, manifest.csv (source, class, split, box, pose, quality), report.json (every
    dropped photo and why) and dataset.json.
    """
    from tqdm import tqdm

    from ..train.dataset import BuildOptions, build_dataset, read_report_summary

    opts = BuildOptions(size=size, largest=largest, min_size=min_size, min_score=min_score, max_yaw=max_yaw,
                        max_pitch=max_pitch, max_roll=max_roll, min_sharpness=min_sharpness,
                        near_dup_bits=near_dup_bits, near_dup_corr=near_dup_corr, min_per_class=min_per_class,
                        val=val, test=test, group=group,
                        seed=seed)
    report = build_dataset(raw, out, opts, progress=lambda xs: tqdm(xs, desc="photos", unit="photo", disable=None))
    doc = report.to_dict()
    if as_json:
        echo_json(doc)
        return
    for line in read_report_summary(doc):
        click.echo(line)
    click.echo(f"wrote {out}/manifest.csv, report.json ({len(doc['classes'])} classes)")
    if not doc["classes"]:
        click.echo("facelab: error: no class has enough photos left; see report.json", err=True)
        sys.exit(DatasetError.exit_code)


@dataset.command("check")
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--far", type=float, default=0.001, show_default=True,
              help="A crop is unlike its class below SFace's 1:1 threshold at this false accept rate.")
@click.option("--share", type=float, default=0.5, show_default=True,
              help="Two classes may be one person when this share of one's crops look like the other's.")
@click.option("--exclude", is_flag=True, help="Drop the suspect crops from the dataset (recorded in "
                                              "OUT/excluded.json, kept out by later builds) and redo the split.")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def check(path, far, share, exclude, as_json):
    """Find labelling mistakes in a dataset whose classes are people: crops unlike their class's others (a
    namesake, someone else's face) and classes that may be one person. Changes nothing.

    Exit 0 when nothing was found, 1 when something is worth a look.
    """
    from ..errors import EXIT_NEGATIVE, EXIT_OK
    from ..train.check import check_dataset

    report = check_dataset(path, far=far, share=share, exclude=exclude)
    if as_json:
        echo_json(report)
    else:
        click.echo(f"{report['dataset']}: checked {report['crops_checked']} crops of {report['classes_checked']} "
                   f"classes (SFace, threshold {report['threshold']:.2f} at FAR {far:g})")
        for s in report["suspect_crops"]:
            click.echo(f"  {s['source'] or s['file']} in class {s['class']} ({s['split']}): {s['reason']}")
        for p in report["similar_classes"]:
            click.echo(f"  {p['a']} and {p['b']} may be one person: {p['share_a_like_b']:.0%} / "
                       f"{p['share_b_like_a']:.0%} of their crops look like the other")
        if not report["suspect_crops"] and not report["similar_classes"]:
            click.echo("  nothing found")
        if report["excluded"]:
            click.echo(f"  excluded {report['excluded']} crops (OUT/excluded.json) and redid the split")
    clean = not report["suspect_crops"] and not report["similar_classes"]
    sys.exit(EXIT_OK if clean else EXIT_NEGATIVE)


@dataset.command("info")
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def info(path, as_json):
    """Classes and photos per split of a built dataset."""
    from ..train.data import open_dataset

    ds = open_dataset(path)
    counts = {s: ds.counts(s) for s in ("train", "val", "test")}
    doc = {"dataset": str(ds.root), "crop_size": ds.crop_size, "classes": len(ds.classes), "counts": counts}
    if as_json:
        echo_json(doc)
        return
    click.echo(f"{ds.root}: {len(ds.rows)} crops {ds.crop_size}x{ds.crop_size}, {len(ds.classes)} classes")
    for c in ds.classes:
        click.echo(f"  {c:30s} " + "  ".join(f"{s} {counts[s][c]:4d}" for s in ("train", "val", "test")))


@click.group()
def train() -> None:
    """Train classifiers and face embedders on a dataset from `facelab dataset build`."""


def _common_train_options(fn):
    options = [
        click.option("--out", type=click.Path(file_okay=False),
                     help="Run folder (default runs/<kind>-<dataset>-<time>)."),
        click.option("--epochs", type=click.IntRange(1), default=None, help="Maximum epochs."),
        click.option("--batch-size", type=click.IntRange(2), default=64, show_default=True),
        click.option("--optimizer", type=click.Choice(["adamw", "sgd", "adamax"]), default="adamw", show_default=True),
        click.option("--lr", type=float, default=None, help="Learning rate (default per method)."),
        click.option("--weight-decay", type=float, default=5e-4, show_default=True),
        click.option("--patience", type=click.IntRange(1), default=4, show_default=True,
                     help="Stop after this many epochs without a better validation score."),
        click.option("--augment", callback=_check_augment, help=AUGMENT_HELP),
        click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda, cuda:1 ..."),
        click.option("--no-amp", is_flag=True, help="No mixed precision on CUDA."),
        click.option("--threads", type=int, default=0, help="CPU threads for torch (0: default)."),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint."),
        click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON."),
    ]
    for opt in reversed(options):
        fn = opt(fn)
    return fn


def _config(epochs, batch_size, optimizer, lr, weight_decay, patience, augment, device, no_amp, threads, seed,
            default_epochs, default_lr):
    from ..train.loop import TrainConfig

    return TrainConfig(epochs=epochs or default_epochs, batch_size=batch_size, optimizer=optimizer,
                       lr=lr if lr is not None else default_lr, weight_decay=weight_decay, patience=patience,
                       augment=augment or "", device=device, amp=not no_amp, threads=threads, seed=seed)


@train.command("classifier")
@click.argument("dataset_dir", metavar="DATASET", type=click.Path(file_okay=False))
@click.option("--method", type=click.Choice(["head", "cnn"]), default="head", show_default=True,
              help="head: on frozen features of a pretrained network (seconds); cnn: a CNN trained on the crops.")
@click.option("--features", type=click.Choice(["sface", "gender_v1", "age_v1"]), default="sface", show_default=True,
              help="Head: which frozen features. sface: identity embedding; gender_v1 / age_v1: penultimate layer "
                   "of the CC0 networks (gender_v1 was itself trained for gender: the head is transfer learning).")
@click.option("--backbone", type=click.Choice(["resnet", "mobilefacenet"]), default="resnet", show_default=True)
@click.option("--input-size", type=click.IntRange(32, 224), default=56, show_default=True,
              help="CNN input side (the 112 crop is resized inside the network).")
@click.option("--width", type=click.IntRange(8, 256), help="CNN base width (resnet 32, mobilefacenet 64).")
@click.option("--hidden", type=click.IntRange(0), default=0, show_default=True, help="Head: hidden units (0: linear).")
@click.option("--init", type=click.Path(exists=True),
              help="CNN: start the backbone from an embedder run (fine-tuning).")
@_common_train_options
@handle_errors
def classifier(dataset_dir, method, features, backbone, input_size, width, hidden, init, out, epochs, batch_size,
               optimizer, lr, weight_decay, patience, augment, device, no_amp, threads, seed, resume, as_json):
    """Train a classifier of the dataset's classes; writes a run folder with metrics, plots, checkpoint, ONNX."""
    require("train", "facelab train classifier")
    from ..train.classifier import train_classifier

    cfg = _config(epochs, batch_size, optimizer, lr, weight_decay, patience, augment, device, no_amp, threads, seed,
                  default_epochs=30 if method == "head" else 8, default_lr=1e-2 if method == "head" else 2e-3)
    result = _guarded(lambda: train_classifier(dataset_dir, out, method=method, backbone=backbone,
                                               input_size=input_size, width=width, hidden=hidden, cfg=cfg,
                                               resume=resume, init=init, features=features), out)
    if as_json:
        echo_json(result)
        return
    best = result["best"]
    click.echo(f"run {result['run']}: best epoch {result['best_epoch']} of {result['epochs_run']}"
               + (f", val accuracy {100 * best['val_acc']:.2f} %" if "val_acc" in best else "")
               + f", {result['mean_images_per_s']:.0f} images/s on {result['device']}")
    if result["test"]:
        t = result["test"]
        click.echo(f"test split ({t['n']} photos, ONNX export): accuracy {100 * t['accuracy']:.2f} %, "
                   f"top-5 {100 * t['top5']:.2f} %, balanced {100 * t['balanced_accuracy']:.2f} %")
    click.echo(f"ONNX export checked: max |diff| vs PyTorch {result['export']['max_abs_diff']:.1e}")
    for w in result["warnings"]:
        click.echo(f"WARNING: {w}", err=True)


@train.command("embedder")
@click.argument("dataset_dir", metavar="DATASET", type=click.Path(file_okay=False))
@click.option("--loss", type=click.Choice(["arcface", "cosface"]), default="arcface", show_default=True)
@click.option("--margin", type=float, help="Angular (ArcFace, default 0.5) or cosine (CosFace, default 0.35) margin.")
@click.option("--scale", type=float, default=32.0, show_default=True, help="Logit scale s.")
@click.option("--backbone", type=click.Choice(["resnet", "mobilefacenet"]), default="mobilefacenet", show_default=True)
@click.option("--input-size", type=click.IntRange(32, 224), default=56, show_default=True)
@click.option("--width", type=click.IntRange(8, 256))
@click.option("--dim", type=click.IntRange(16, 1024), default=128, show_default=True, help="Embedding size.")
@click.option("--lfw", "lfw_root", type=click.Path(file_okay=False),
              help="LFW folder (pairs.txt, images/): verification accuracy every epoch "
                   "(default ../shared/data/lfw if there).")
@click.option("--lfw-pairs", type=click.IntRange(0), default=1200, show_default=True,
              help="How many View 2 pairs to score per epoch (0: none; 6000: all).")
@_common_train_options
@handle_errors
def embedder(dataset_dir, loss, margin, scale, backbone, input_size, width, dim, lfw_root, lfw_pairs, out, epochs,
             batch_size, optimizer, lr, weight_decay, patience, augment, device, no_amp, threads, seed, resume,
             as_json):
    """Metric learning on identities (classes = people) with an ArcFace or CosFace margin.

    With more than one CUDA GPU it relaunches itself under torchrun (DistributedDataParallel, one process per GPU).
    """
    require("train", "facelab train embedder")
    from ..train.embedder import maybe_relaunch_distributed, train_embedder

    maybe_relaunch_distributed(device)
    if lfw_root is None and Path("../shared/data/lfw/pairs.txt").exists():
        lfw_root = "../shared/data/lfw"
    cfg = _config(epochs, batch_size, optimizer, lr, weight_decay, patience, augment, device, no_amp, threads, seed,
                  default_epochs=10, default_lr=2e-3)
    result = _guarded(lambda: train_embedder(dataset_dir, out, loss=loss, margin=margin, scale=scale,
                                             backbone=backbone, input_size=input_size, width=width, dim=dim,
                                             lfw_root=lfw_root, lfw_pairs=lfw_pairs, cfg=cfg, resume=resume), out)
    if not result:  # a non-zero rank of a distributed run
        return
    if as_json:
        echo_json(result)
        return
    best = result["best"]
    click.echo(f"run {result['run']}: best epoch {result['best_epoch']} of {result['epochs_run']}, "
               f"{result['mean_images_per_s']:.0f} images/s on {result['device']}")
    if "lfw_acc" in best:
        click.echo(f"LFW ({best['lfw_pairs']} pairs): accuracy {100 * best['lfw_acc']:.2f} % at cosine "
                   f"{best['lfw_threshold']:.3f}, AUC {best['lfw_auc']:.4f}")
    click.echo(f"ONNX export checked: max |diff| vs PyTorch {result['export']['max_abs_diff']:.1e}")
    for w in result["warnings"]:
        click.echo(f"WARNING: {w}", err=True)


@train.command("predict")
@click.argument("model")
@click.argument("photos", nargs=-1, required=True)
@click.option("--top", type=click.IntRange(1), default=5, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def predict(model, photos, top, as_json):
    """Rank the main face of each photo against a classifier's classes (MODEL: a run folder or a registered
    model). With classes of people this is a look-alike ranking."""
    from ..errors import EXIT_OK, FacelabError
    from ..train.predict import load_classifier

    clf = load_classifier(model)
    records, codes = [], []
    for src in photos:
        try:
            rec = {"file": src, **clf.rank_image(src, top)}
            records.append(rec)
            codes.append(EXIT_OK)
            if not as_json:
                ranking = ", ".join(f"{r['class']} {100 * r['probability']:.1f} %" for r in rec["ranking"])
                click.echo(f"{src}: {ranking}")
        except FacelabError as err:
            record_failure(records, codes, src, err)
    finish_batch(records, codes, as_json)


def _guarded(fn, out):
    """Ctrl-C during training: the last finished epoch is on disk; say how to continue."""
    try:
        return fn()
    except KeyboardInterrupt:
        where = f" --out {out}" if out else " --out RUN_DIR"
        click.echo(f"facelab: interrupted; the last finished epoch is saved: rerun with --resume{where}", err=True)
        sys.exit(130)


@eval_group.command("classifier")
@click.argument("model")
@click.argument("dataset_dir", metavar="DATASET", type=click.Path(file_okay=False))
@click.option("--split", type=click.Choice(["train", "val", "test", "all"]),
              help="Which photos (default: test if the dataset has a test split, else all).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), help="Where eval.json and the PNGs go.")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def eval_classifier(model, dataset_dir, split, out_dir, as_json):
    """Accuracy, top-5, per-class precision/recall, confusion matrix and the worst images (contact sheet) of a
    classifier (MODEL: run folder or registered model) on a dataset."""
    from ..train.evaluate import evaluate_classifier

    report = evaluate_classifier(model, dataset_dir, split, out_dir)
    if as_json:
        echo_json(report)
        return
    click.echo(f"{report['model']} on {report['dataset']} ({report['split']}, {report['n']} photos): accuracy "
               f"{100 * report['accuracy']:.2f} %, top-5 {100 * report['top5']:.2f} %, balanced "
               f"{100 * report['balanced_accuracy']:.2f} %")
    rows = sorted(report["per_class"].items(), key=lambda kv: (kv[1]["recall"] is None, kv[1]["recall"] or 0))
    for name, m in rows[:15]:
        if m["support"]:
            p = "-" if m["precision"] is None else f"{100 * m['precision']:.1f}"
            click.echo(f"  {name:30s} precision {p:>5s}  recall {100 * m['recall']:5.1f}  n={m['support']}")
    if len(rows) > 15:
        click.echo(f"  ... {len(rows) - 15} more classes in eval.json")
    for f in report["files"]:
        click.echo(f"wrote {f}")
    for w in report["warnings"]:
        click.echo(f"WARNING: {w}", err=True)


@models.command("add")
@click.argument("run_dir", type=click.Path(file_okay=False, exists=True))
@click.option("--name", help="Model name (default: from the run folder).")
@click.option("--task", help="Registry task (default: embedding / classification); e.g. gender.")
@click.option("--licence", default="unspecified (trained by the user on their own data)", show_default=True)
@click.option("--replace", is_flag=True, help="Replace a user model of the same name.")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def add(run_dir, name, task, licence, replace, as_json):
    """Register a training run's ONNX export as a user model ($FACELAB_HOME/models.toml)."""
    from ..train.register import register_run

    entry = register_run(run_dir, name, task, licence, replace)
    if as_json:
        echo_json(entry)
        return
    click.echo(f"registered {entry['name']} ({entry['task']}) in {entry['registry']}")
    if entry["task"] == "embedding":
        click.echo(f"  use it: facelab verify A.jpg B.jpg --model {entry['name']}")
    else:
        click.echo(f"  use it: facelab analyze PHOTO --attributes {entry['name']}  (labels: "
                   f"{', '.join(entry['labels'][:8])}{', ...' if len(entry['labels']) > 8 else ''})")
        click.echo(f"      or: facelab train predict {entry['name']} PHOTO")
