"""`facelab library ...`: scan a photo collection, group faces by person, name and curate, search (printing only)."""
from __future__ import annotations

import sys

import click

from ..distributed.options import engine_options, ray_workers
from ..errors import EXIT_OK, EXIT_PARTIAL
from .common import confirm_deletion, echo_json, echo_result, handle_errors, location_options, print_skipped

LIBRARY_HELP = ("Library: an SQLite file (lib.db) or postgresql://...#name; it is a gallery, so `identify -g LIB` "
                "knows its named people.")


library_option = location_options("-l", "--library", envvar="FACELAB_LIBRARY", help=LIBRARY_HELP)


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


def _open(location, timeout, create=False, model=None):
    from ..library import open_library

    return open_library(location, model=model, create=create, timeout=timeout)


def _run(location, timeout, fn, as_json, text=None):
    """fn(library) on the opened library, then its result printed (JSON, or `text`)."""
    with _open(location, timeout) as lib:
        result = fn(lib)
    echo_result(result, as_json, text)


@click.group()
def library():
    """Photo libraries: every face of a collection, grouped by person; name, curate, search.

    A person or group is written as its name or group:N (see `library people`).
    """


@library.command()
@click.argument("photos", type=click.Path(exists=True, file_okay=False))
@library_option
@click.option("--model", default=None, help="Embedding model of a new library (default sface+flip); an existing "
                                            "library keeps its own and refuses another.")
@click.option("--workers", type=int, default=1, show_default=True,
              help="Processes for detection/embedding (--engine ray: Ray actors; default the cluster's CPUs).")
@click.option("--retry-skipped", is_flag=True, help="Read again the files skipped by an earlier scan.")
@click.option("--no-group", is_flag=True, help="Only store the faces; group them later (`library cluster`).")
@click.option("--no-progress", is_flag=True, help="No progress bar (it is off anyway when not on a terminal).")
@json_option
@engine_options
@click.pass_context
@handle_errors
def scan(ctx, photos, location, timeout, model, workers, retry_skipped, no_group, no_progress, as_json, engine,
         ray_address, cpus_per_worker):
    """Find every face of every photo under PHOTOS, store it, and sort new faces into groups and named people.

    Re-running reads only new or changed files and drops the faces of deleted ones; an interrupted scan
    resumes where it stopped. With --engine ray the faces are found on a Ray cluster and this process stores
    them. Exit 0, or 7 if some files were skipped (each listed with its reason).
    """
    analyse = None
    if engine == "ray":  # before the library is opened: a missing extra creates nothing
        from ..distributed import ray_engine

        analyse = ray_engine.scan_analyser(ray_address, ray_workers(ctx, workers), cpus_per_worker)
    with _open(location, timeout, create=True, model=model) as lib:
        report = lib.scan(photos, workers=workers, progress=not no_progress, retry_skipped=retry_skipped,
                          group=not no_group, analyse=analyse)
    hard = {r: v for r, v in report.skipped.items() if r != "no face"}
    if as_json:
        echo_json(report.to_dict())
    else:
        click.echo(f"{location}: {report.summary()}")
        print_skipped(report.skipped)
        if report.grouping:
            g = report.grouping
            click.echo(f"  grouping: {g['joined_people']} faces joined named people, {g['joined_groups']} joined "
                       f"groups, {g['new_groups']} new groups ({g['seconds']:.1f} s)")
    sys.exit(EXIT_PARTIAL if hard else EXIT_OK)


@library.command()
@library_option
@click.option("--full", is_flag=True, help="Regroup every unnamed face from scratch (named people keep theirs).")
@json_option
@handle_errors
def cluster(location, timeout, full, as_json):
    """Sort the faces not sorted yet into groups and named people (or regroup all with --full)."""
    _run(location, timeout, lambda lib: lib.group(full=full), as_json,
         lambda g: f"{g['mode']}: {g['considered']} faces considered, {g['joined_people']} joined named people, "
                   f"{g['joined_groups']} joined groups, {g['new_groups']} new groups, {g['moved']} moved "
                   f"({g['seconds']:.1f} s)")


def _people_text(res) -> str:
    lines = [f"{p['name']}: {p['faces']} faces in {p['photos']} photos" for p in res["people"]]
    lines += [f"{g['group']}: {g['faces']} faces in {g['photos']} photos (unnamed; cover face {g['cover_face']})"
              for g in res.get("groups", [])]
    lines.append(f"unsorted: {res['unsorted_faces']} faces")
    return "\n".join(lines)


@library.command()
@library_option
@click.option("--min-faces", type=int, default=1, show_default=True, help="Hide groups with fewer faces.")
@json_option
@handle_errors
def people(location, timeout, min_faces, as_json):
    """Named people and unnamed groups with their face and photo counts and a cover face."""
    _run(location, timeout, lambda lib: lib.people(min_faces=min_faces), as_json, _people_text)


@library.command()
@click.argument("who")
@library_option
@click.option("--limit", type=int, default=None, help="At most this many faces.")
@json_option
@handle_errors
def faces(who, location, timeout, limit, as_json):
    """The faces of a person, a group (group:N) or `unsorted`."""
    _run(location, timeout, lambda lib: [f.to_dict() for f in lib.faces_of(who, limit=limit)], as_json,
         lambda rows: "\n".join(f"face {f['id']}: {f['source']} (face {f['face_index']} of {f['n_faces']})"
                                for f in rows) or "no faces")


@library.command()
@click.argument("who")
@click.argument("name")
@library_option
@json_option
@handle_errors
def name(who, name, location, timeout, as_json):
    """Name a group (group:N): it becomes person NAME of the gallery (an existing NAME takes its faces).
    Given a person, renames them."""
    _run(location, timeout, lambda lib: lib.name(who, name), as_json)


@library.command()
@click.argument("source")
@click.argument("target")
@library_option
@json_option
@handle_errors
def merge(source, target, location, timeout, as_json):
    """Move every face of SOURCE (person or group) to TARGET and delete SOURCE."""
    _run(location, timeout, lambda lib: lib.merge(source, target), as_json)


@library.command()
@click.argument("who")
@click.argument("face_ids", nargs=-1, type=int, required=True)
@library_option
@json_option
@handle_errors
def split(who, face_ids, location, timeout, as_json):
    """Take FACE_IDS out of a person or group into a new unnamed group."""
    _run(location, timeout, lambda lib: lib.split(who, list(face_ids)), as_json)


@library.command()
@click.argument("face_id", type=int)
@click.argument("target")
@library_option
@json_option
@handle_errors
def move(face_id, target, location, timeout, as_json):
    """Move one face to TARGET: a person (created if new), a group (group:N) or `unsorted`."""
    _run(location, timeout, lambda lib: lib.move(face_id, target), as_json)


@library.command("not")
@click.argument("face_id", type=int)
@library_option
@json_option
@handle_errors
def not_this_person(face_id, location, timeout, as_json):
    """"Not this person": FACE_ID leaves its person or group for unsorted and is never put back there."""
    _run(location, timeout, lambda lib: lib.reject(face_id), as_json)


@library.command()
@click.argument("who")
@library_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@json_option
@handle_errors
def forget(who, location, timeout, yes, as_json):
    """Delete a person or group with every face, thumbnail and embedding (biometric data), everywhere."""
    confirm_deletion(f"Delete {who} and all their faces from {location}?", yes or as_json)
    _run(location, timeout, lambda lib: lib.forget(who), as_json)


@library.command()
@library_option
@click.option("--with", "with_", multiple=True, required=True, help="A person or group in the photo (repeatable).")
@click.option("--without", multiple=True, help="A person or group not in the photo (repeatable).")
@json_option
@handle_errors
def photos(location, timeout, with_, without, as_json):
    """Photos in which every --with person appears and no --without person does."""
    _run(location, timeout, lambda lib: lib.photos_with(list(with_), list(without)), as_json,
         lambda rows: "\n".join(rows) if rows else "no photo")


@library.command()
@click.argument("who")
@click.argument("out")
@library_option
@click.option("--format", "mode", type=click.Choice(["symlink", "json"]), default="symlink", show_default=True,
              help="symlink: OUT is a folder of links to the photos; json: OUT is a JSON file listing them.")
@json_option
@handle_errors
def album(who, out, location, timeout, mode, as_json):
    """Export WHO's photos as an album."""
    _run(location, timeout, lambda lib: lib.export_album(who, out, mode), as_json)


@library.command()
@library_option
@json_option
@handle_errors
def stats(location, timeout, as_json):
    """Files, faces (named, grouped, unsorted), people and groups."""
    _run(location, timeout, lambda lib: lib.stats(), as_json)
