"""Gallery commands: `facelab gallery ...`, `facelab identify`, `facelab lookalike` (parsing and printing only)."""
from __future__ import annotations

import json
import sys

import click

from ..distributed.options import engine_options, ray_workers
from ..errors import EXIT_NEGATIVE, EXIT_OK, EXIT_PARTIAL, FacelabError, NoFaceError
from .common import (
    DEGREES,
    FACE_INDEX,
    FAR,
    FAR_OR_ZERO,
    PIXELS,
    SECONDS,
    SHARE,
    SIMILARITY,
    batch_exit_code,
    confirm_deletion,
    echo_json,
    finish_batch,
    handle_errors,
    location_options,
    output_file,
    print_skipped,
    record_failure,
)

AUTO_CHECK_LIMIT = 50_000  # embeddings; `gallery enrol` runs `gallery check` up to this size (cost grows with people²)
GALLERY_HELP = "Gallery: a SQLite file (people.db) or postgresql://user@host/db (pgvector)."


gallery_option = location_options("-g", "--gallery", envvar="FACELAB_GALLERY", help=GALLERY_HELP,
                                  timeout_type=SECONDS)


keep_faces_option = click.option(
    "--keep-faces", is_flag=True, help="Also keep a small JPEG crop of each stored face in the gallery (biometric "
                                       "data; deleted with its photo). Default: photos are only referenced by path.")


def _open(location, timeout, create=False, model=None):
    from .. import open_gallery

    return open_gallery(location, model=model, create=create, timeout=timeout)


@click.group()
def gallery():
    """Galleries of known people: enrol, list, edit, export/import."""


@gallery.command()
@click.argument("root", type=click.Path(exists=True, file_okay=False))
@gallery_option
@click.option("--model", default=None, help="Embedding model for a new gallery (default sface; an existing "
                                            "gallery keeps its own).")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Processes for detection/embedding.")
@click.option("--min-size", type=PIXELS, default=40.0, show_default=True, help="Smallest face, pixels.")
@click.option("--max-yaw", type=DEGREES, default=45.0, show_default=True, help="Most turned face, degrees.")
@click.option("--max-pitch", type=DEGREES, default=40.0, show_default=True)
@click.option("--match-far", type=FAR_OR_ZERO, default=0.001, show_default=True,
              help="Group photos: keep the one face that matches the person's other photos at this 1:1 false "
                   "accept rate (0: skip every photo with several faces of similar size).")
@keep_faces_option
@click.option("--batch", type=click.IntRange(1, 100_000), default=32, show_default=True,
              help="Photos written per transaction.")
@click.option("--retry-skipped", is_flag=True, help="Look again at files skipped by an earlier run.")
@click.option("--no-progress", is_flag=True, help="No progress bar (it is off anyway when not on a terminal).")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@engine_options
@click.pass_context
@handle_errors
def enrol(ctx, root, location, timeout, model, workers, min_size, max_yaw, max_pitch, match_far, keep_faces, batch,
          retry_skipped, no_progress, as_json, engine, ray_address, cpus_per_worker):
    """Enrol ROOT/<person>/<photos>: detect, filter, embed and store every photo under its person.

    Re-running adds only new or changed files, then the gallery is checked for misfiled photos (`gallery
    check`, up to 50,000 embeddings). Exit 0, or 7 if some photos were skipped.
    """
    from ..gallery import EnrolOptions

    analyse = None
    if engine == "ray":
        from ..distributed import ray_engine

        ray_engine.require_ray("gallery enrol --engine ray")
        analyse = ray_engine.enrol_analyser(ray_address, ray_workers(ctx, workers), cpus_per_worker)
    with _open(location, timeout, create=True, model=model) as g:
        report = g.enrol_folder(root, progress=not no_progress, workers=workers, retry_skipped=retry_skipped,
                                batch=batch, analyse=analyse,
                                options=EnrolOptions(min_size=min_size, max_yaw=max_yaw, max_pitch=max_pitch,
                                                     match_far=match_far, keep_faces=keep_faces))
        # a crawled folder's mislabels are cheapest to fix right after enrolment: say so (small galleries only)
        checked = g.check() if report.added and g.vector_count() <= AUTO_CHECK_LIMIT else None
    if as_json:
        extra = {"check": {"suspect_photos": len(checked.photos), "similar_people": len(checked.people)}
                 } if checked else {}
        echo_json({**report.to_dict(), **extra})
    else:
        click.echo(f"{location}: {report.summary()}")
        print_skipped(report.skipped)
        if checked and not checked.clean:
            click.echo(f"  check: {len(checked.photos)} photos look unlike their person's other photos, "
                       f"{len(checked.people)} pairs of people may be one person: facelab gallery check -g {location}")
    sys.exit(EXIT_PARTIAL if report.skipped else EXIT_OK)


@gallery.command()
@click.argument("person")
@click.argument("photos", nargs=-1, required=True)
@gallery_option
@click.option("--model", default=None, help="Embedding model for a new gallery.")
@click.option("--face", type=FACE_INDEX, help="Which face of the photo (index from `facelab detect`); default: the "
                                              "one face that matches PERSON's other photos, else the main face.")
@keep_faces_option
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def add(person, photos, location, timeout, model, face, keep_faces, as_json):
    """Add photos of PERSON (created if new). The photos are referenced by path, not copied (--keep-faces keeps a
    crop of the face)."""
    records, codes = [], []
    with _open(location, timeout, create=True, model=model) as g:
        for src in photos:
            try:
                rec = g.add_photo(person, src, face=face, keep_face=keep_faces)
                records.append(rec.to_dict())
                codes.append(EXIT_OK)
                if not as_json:
                    click.echo(f"added {src} as photo {rec.id} of {person}")
            except FacelabError as err:
                record_failure(records, codes, src, err)
    if as_json:
        echo_json(records)
    sys.exit(batch_exit_code(codes))


@gallery.command()
@click.argument("photo_ids", nargs=-1, type=click.IntRange(1, 2**63 - 1), required=True)
@gallery_option
@handle_errors
def remove(photo_ids, location, timeout):
    """Remove photos by id (see `gallery show`): their records and embeddings."""
    with _open(location, timeout) as g:
        for pid in photo_ids:
            g.remove_photo(pid)
            click.echo(f"removed photo {pid}")


@gallery.command("list")
@gallery_option
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def list_people(location, timeout, as_json):
    """People in the gallery, with photo counts."""
    with _open(location, timeout) as g:
        people = [p.to_dict() for p in g.people()]
    if as_json:
        echo_json(people)
        return
    for p in people:
        click.echo(f"{p['name']}\t{p['photos']} photo{'s' if p['photos'] != 1 else ''}")
    click.echo(f"{len(people)} people", err=True)


@gallery.command()
@click.argument("person")
@gallery_option
@click.option("--save-faces", type=click.Path(file_okay=False), default=None,
              help="Write the kept face crops (galleries enrolled with --keep-faces) to this folder as ID.jpg.")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def show(person, location, timeout, save_faces, as_json):
    """One person's photos: id, file, face box, pose, quality."""
    from pathlib import Path

    with _open(location, timeout) as g:
        rec = g.person(person)
        photos = [p.to_dict() for p in g.photos(person)]
        crops = {p["id"]: g.face_image(p["id"]) for p in photos} if save_faces else {}
    if save_faces:
        Path(save_faces).mkdir(parents=True, exist_ok=True)
        for pid, jpeg in crops.items():
            if jpeg:
                (Path(save_faces) / f"{pid}.jpg").write_bytes(jpeg)
        kept = sum(1 for j in crops.values() if j)
        click.echo(f"wrote {kept} face crops to {save_faces}" +
                   ("" if kept == len(crops) else f" ({len(crops) - kept} photos have none: enrolled without "
                                                  f"--keep-faces)"), err=as_json)
    if as_json:
        echo_json({**rec.to_dict(), "photos": photos})
        return
    click.echo(f"{rec.name}: {rec.photos} photos")
    for p in photos:
        pose = p["pose"] or {}
        click.echo(f"  #{p['id']} {p['source']}  face {p['face_index']} of {p['n_faces']}  "
                   f"yaw={pose.get('yaw', 0):+.0f} size={(p['quality'] or {}).get('size', 0):.0f}px")


@gallery.command()
@gallery_option
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def stats(location, timeout, as_json):
    """Counts, model, index kind and size on disk."""
    with _open(location, timeout) as g:
        s = g.stats()
    if as_json:
        echo_json(s)
        return
    for k, v in s.items():
        if k != "warnings":
            click.echo(f"{k}: {json.dumps(v) if isinstance(v, dict) else v}")
    for warning in s.get("warnings", []):
        click.echo(f"warning: {warning}", err=True)


@gallery.command("export")
@click.argument("output", type=click.Path(dir_okay=False), callback=output_file)
@gallery_option
@handle_errors
def export_cmd(output, location, timeout):
    """Write the gallery (people, photo records, embeddings) to a portable .json or .json.gz file."""
    with _open(location, timeout) as g:
        n = g.export(output)
    click.echo(f"exported {n['people']} people, {n['photos']} photos to {output} (contains face embeddings: "
               f"biometric data)")


@gallery.command("import")
@click.argument("source", type=click.Path(dir_okay=False))
@gallery_option
@handle_errors
def import_cmd(source, location, timeout):
    """Add the people and photos of an exported file (same model; photos already present are skipped)."""
    from ..gallery import EXPORT_FORMAT  # noqa: F401  (fails early if the module is broken)

    model = _export_model(source)
    with _open(location, timeout, create=True, model=model) as g:
        n = g.import_file(source)
    click.echo(f"imported {n['added']} photos of {n['people']} people ({n['skipped_duplicates']} already present)")


def _export_model(path):
    """The model named in an export file, so that importing into a new gallery creates it with that model (the
    file is read once more by the import itself: bounded, like here)."""
    from ..gallery.export_format import load_export

    return load_export(path)["model"]["name"]


@gallery.command()
@click.argument("old")
@click.argument("new")
@gallery_option
@handle_errors
def rename(old, new, location, timeout):
    """Rename a person."""
    with _open(location, timeout) as g:
        g.rename_person(old, new)
    click.echo(f"renamed {old} to {new}")


@gallery.command()
@click.argument("src")
@click.argument("dst")
@gallery_option
@handle_errors
def merge(src, dst, location, timeout):
    """Move every photo of SRC to DST, then delete SRC."""
    with _open(location, timeout) as g:
        n = g.merge_people(src, dst)
    click.echo(f"merged {src} into {dst} ({n} photos moved)")


@gallery.command()
@click.argument("person")
@gallery_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@handle_errors
def delete(person, location, timeout, yes):
    """Delete a person: their photo records and embeddings, everywhere (the photo files are not touched)."""
    confirm_deletion(f"delete {person} and all their face data from {location}?", yes)
    with _open(location, timeout) as g:
        n = g.delete_person(person)
    click.echo(f"deleted {person} ({n} photos)")


@gallery.command()
@gallery_option
@click.option("--far", type=FAR, default=0.001, show_default=True,
              help="A photo is unlike its person below the 1:1 threshold at this false accept rate.")
@click.option("--share", type=SHARE, default=0.5, show_default=True,
              help="Two people may be one when this share of one's photos look like the other's.")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def check(location, timeout, far, share, as_json):
    """Find labelling mistakes: photos unlike their person's other photos (a namesake, the wrong face of a group
    photo) and people who may be one person under two names. Changes nothing.

    Exit 0 when nothing was found, 1 when something is worth a look.
    """
    with _open(location, timeout) as g:
        report = g.check(far=far, share=share)
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(f"{location}: checked {report.photos_checked} photos of {report.people_checked} people "
                   f"({report.people_with_one_photo} people with one photo cannot be checked)")
        for p in report.photos:
            click.echo(f"  photo #{p.photo_id} {p.source or '(no file)'} filed under {p.person}: {p.reason}")
        for p in report.people:
            click.echo(f"  {p.a} and {p.b} may be one person: {p.share_a_like_b:.0%} of {p.a}'s photos look like "
                       f"{p.b}, {p.share_b_like_a:.0%} the other way")
        if report.clean:
            click.echo("  nothing found")
        else:
            click.echo("  (`gallery remove ID` drops a photo; `gallery merge A B` joins two people)")
    sys.exit(EXIT_OK if report.clean else EXIT_NEGATIVE)


@gallery.command()
@gallery_option
@click.option("--fpir", default="0.01", show_default=True,
              help="Share of strangers that may be named as someone (false-positive identification rate).")
@click.option("--scoring", type=click.Choice(["max", "mean", "both"]), default="mean", show_default=True,
              help="The person score identify will use.")
@click.option("--strangers", metavar="FOLDER|GALLERY",
              help="People who are NOT in this gallery, searched against all of it next to the left-out people: a "
                   "folder (one sub-folder per person, or loose photos, one person each) or another gallery of the "
                   "same model. A few hundred to thousands of them, like the people identify will meet, make the "
                   "threshold this gallery's own. Used, not stored.")
@click.option("--workers", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Processes reading the strangers' photos.")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def calibrate(location, timeout, fpir, scoring, strangers, workers, as_json):
    """Measure the "unknown" threshold on this gallery: each person plays a stranger in turn (searched against
    everyone else), with the --strangers if given; the threshold names at most FPIR of them. Stored in the
    gallery; `identify` uses it.

    Without many strangers LFW's FPIR curve, moved to this gallery's own scores, carries most of the estimate
    (docs/thresholds.md). Needs at least max(10, 1/FPIR) people, gallery and strangers together. Exit 0; nothing
    changed: 2 for a bad FPIR or strangers that are neither a folder nor a gallery, 4 for strangers without a
    usable face, 6 for too few people.
    """
    from ..gallery.calibrate import check_fpir

    value = check_fpir(fpir)  # before opening: a bad request changes nothing
    with _open(location, timeout) as g:
        result = g.calibrate(fpir=value, scoring=scoring, strangers=strangers, workers=workers)
    if as_json:
        echo_json(result.to_dict())
        return
    searched = f"{result.people} people each left out in turn"
    if result.supplied_strangers:
        searched += f" and {result.supplied_strangers} supplied strangers"
    click.echo(f"{location}: unknown below {result.threshold:.4f} ({scoring} scoring): {searched} "
               f"({result.probes} photos searched), {result.fpir_measured:.2%} of them named "
               f"at this threshold (asked: {result.fpir:.2%}). `identify` now uses it.")
    if result.supplied_skipped:
        click.echo(f"  strangers: {result.supplied_photos} photos used, skipped "
                   + ", ".join(f"{n} ({reason})" for reason, n in sorted(result.supplied_skipped.items())))
    if result.prior_weight:
        alone = "the strangers" if result.supplied_strangers else "left-out people"
        click.echo(f"  {result.method}: LFW's curve for {result.people} people, moved by {result.shift:+.4f} to "
                   f"this gallery's {result.comparisons:,} cross-person scores, weighs {result.prior_weight:.0%}; "
                   f"estimated FPIR {result.fpir_estimate:.2%} ({alone} alone: {result.threshold_left_out:.4f},"
                   f" LFW's curve alone: {result.threshold_lfw_curve:.4f})")
    if result.warning:
        click.echo(f"warning: {result.warning}", err=True)


def _threshold_options(fn):
    fn = click.option("--far", type=FAR, help="A 1:1 false-accept rate (e.g. 0.001): its LFW-calibrated threshold. "
                                                "Default: the gallery's own (`gallery calibrate`), else the open-set "
                                                "threshold that named 1 % of strangers on LFW.")(fn)
    return click.option("--threshold", type=SIMILARITY, help="Cosine needed to name someone (overrides --far).")(fn)


@click.command()
@click.argument("photos", nargs=-1, required=True)
@gallery_option
@click.option("-k", "--top-k", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="People to list per face.")
@_threshold_options
@click.option("--scoring", type=click.Choice(["max", "mean", "both"]), default="mean", show_default=True,
              help="Person score: mean template, best photo, or their average.")
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def identify(photos, location, timeout, top_k, threshold, far, scoring, as_json):
    """Who is in the photo? For every face: the best K people, or 'unknown' below the threshold.

    Exit 0 if every photo had a known face, 1 if faces were found but nobody known, 4 no face, 7 mixed.
    """
    records, codes = [], []
    with _open(location, timeout) as g:
        for src in photos:
            try:
                results = g.identify(src, top_k=top_k, threshold=threshold, far=far, scoring=scoring)
                if not results:
                    raise NoFaceError(f"{src}: no face found")
                records.append({"file": src, "faces": [r.to_dict() for r in results]})
                codes.append(EXIT_OK if any(r.best for r in results) else EXIT_NEGATIVE)
                if not as_json:
                    _print_identification(src, results)
            except FacelabError as err:
                record_failure(records, codes, src, err)
    finish_batch(records, codes, as_json)


def _print_identification(src, results):
    t = results[0].threshold
    click.echo(f"{src}: {len(results)} face{'s' if len(results) != 1 else ''} (threshold {t:.3f}, "
               f"{results[0].threshold_source})")
    for r in results:
        x, y, w, h = r.face.box
        who = f"{r.best.person} ({r.best.similarity:.3f})" if r.best else "unknown"
        others = ", ".join(f"{m.person} {m.similarity:.3f}" for m in r.matches) or "the gallery is empty"
        click.echo(f"  #{r.face.index} at ({x:.0f},{y:.0f},{w:.0f}x{h:.0f}): {who}   [{others}]")
        for reason in r.uncertain:
            click.echo(f"    uncertain: {reason}")


@click.command()
@click.argument("photos", nargs=-1, required=True)
@gallery_option
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def lookalike(photos, location, timeout, as_json):
    """Who does each face look like most? The nearest person and their nearest photo, whatever the score."""
    records, codes = [], []
    with _open(location, timeout) as g:
        for src in photos:
            try:
                results = g.lookalike(src)
                if not results:
                    raise NoFaceError(f"{src}: no face found")
                records.append({"file": src, "faces": [r.to_dict() for r in results]})
                codes.append(EXIT_OK)
                if not as_json:
                    for r in results:
                        if r.person is None:
                            click.echo(f"{src} #{r.face.index}: the gallery is empty")
                            continue
                        photo = r.photo or {}
                        click.echo(f"{src} #{r.face.index}: looks like {r.person} ({r.similarity:.3f}), most of "
                                   f"all {photo.get('source') or 'photo ' + str(photo.get('id'))}")
            except FacelabError as err:
                record_failure(records, codes, src, err)
    finish_batch(records, codes, as_json)
