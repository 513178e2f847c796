"""Core commands: detect, verify, embed, models."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..distributed.options import engine_options
from ..errors import EXIT_NEGATIVE, EXIT_OK, EXIT_USAGE, FacelabError, NoFaceError
from .common import (
    DEGREES,
    FACE_INDEX,
    FAR,
    PIXELS,
    SCORE,
    SIMILARITY,
    batch_exit_code,
    drawing_path,
    echo_json,
    finish_batch,
    handle_errors,
    output_file,
    record_failure,
)


class EmbedderName(click.ParamType):
    """A built-in embedder, or a user model of task "embedding" registered with `facelab models add`."""

    name = "embedder"

    def get_metavar(self, *args, **kwargs):
        return "[sface|dlib_resnet|fused|USER_MODEL]"

    def convert(self, value, param, ctx):
        from ..embedders import EMBEDDERS, registered_embedder_names

        known = [*EMBEDDERS, *registered_embedder_names()]
        if value not in known:
            self.fail(f"{value!r} is not an embedding model; known: {', '.join(known)}", param, ctx)
        return value


EMBEDDER_CHOICES = EmbedderName()


def _filters(min_size, min_score, max_yaw, max_pitch, max_roll):
    from ..pipeline import FaceFilter

    return FaceFilter(min_size=min_size, min_score=min_score, max_yaw=max_yaw, max_pitch=max_pitch,
                      max_roll=max_roll)


@click.command()
@click.argument("photos", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one record per photo).")
@click.option("--draw", type=click.Path(dir_okay=True),
              help="Write the photo with faces drawn (a file; a folder for several photos).")
@click.option("--min-size", type=PIXELS, help="Smallest face to keep, pixels (shorter box side).")
@click.option("--min-score", type=SCORE, help="Lowest detector score to keep (0-1).")
@click.option("--max-yaw", type=DEGREES, help="Largest left-right turn to keep, degrees.")
@click.option("--max-pitch", type=DEGREES, help="Largest up-down nod to keep, degrees.")
@click.option("--max-roll", type=DEGREES, help="Largest in-plane tilt to keep, degrees.")
@click.option("--detector", type=click.Choice(["yunet", "dlib_hog"]), default="yunet", show_default=True)
@handle_errors
def detect(photos, as_json, draw, min_size, min_score, max_yaw, max_pitch, max_roll, detector):
    """Find every face: box, score, 5 landmarks, head pose and quality.

    Exit code 4 if a photo has no face (kept by the filters); 7 if some photos of several failed.
    """
    from ..draw import draw_faces
    from ..images import load_image, save_image
    from ..pipeline import shared_analysis

    analysis = shared_analysis(detector=detector)
    filters = _filters(min_size, min_score, max_yaw, max_pitch, max_roll)
    records, codes = [], []
    for src in photos:
        try:
            rgb = load_image(src)
            faces = analysis.detect_rgb(rgb, filters)
            if draw:  # before the record: a drawing that cannot be written is this photo's error
                out = drawing_path(draw, src, len(photos), "_faces.jpg")
                save_image(draw_faces(rgb, faces), out)
            records.append({"file": src, "width": rgb.shape[1], "height": rgb.shape[0],
                            "faces": [f.to_dict() for f in faces]})
            codes.append(EXIT_OK if faces else NoFaceError.exit_code)
            if not as_json:
                _print_faces(src, rgb.shape, faces)
        except FacelabError as err:
            record_failure(records, codes, src, err)
    finish_batch(records, codes, as_json)


def _print_faces(src, shape, faces):
    click.echo(f"{src}: {len(faces)} face{'s' if len(faces) != 1 else ''} ({shape[1]}x{shape[0]})")
    for f in faces:
        x, y, w, h = f.box
        p, q = f.pose, f.quality
        click.echo(f"  #{f.index} box=({x:.0f},{y:.0f},{w:.0f}x{h:.0f}) score={f.score:.2f} "
                   f"yaw={p.yaw:+.0f} pitch={p.pitch:+.0f} roll={p.roll:+.0f} "
                   f"size={q.size:.0f}px sharpness={q.sharpness:.0f}")


@click.command()
@click.argument("photo_a")
@click.argument("photo_b")
@click.option("--model", type=EMBEDDER_CHOICES, default="sface", show_default=True, help="Embedding model.")
@click.option("--flip", is_flag=True, help="Average each face with its mirror image (a little more accurate).")
@click.option("--threshold", type=SIMILARITY, help="Cosine similarity needed to say 'same' (overrides --far).")
@click.option("--far", type=FAR, help="Target false-accept rate (0.1 ... 1e-6), e.g. 0.001; picks the threshold "
                                      "measured on every LFW pair. Default: 1e-4 (docs/thresholds.md).")
@click.option("--face-a", type=FACE_INDEX, help="Which face of photo A (index from `facelab detect`).")
@click.option("--face-b", type=FACE_INDEX, help="Which face of photo B.")
@click.option("--json", "as_json", is_flag=True)
def verify(photo_a, photo_b, model, flip, threshold, far, face_a, face_b, as_json):
    """Same person or not. Exit 0 same, 1 different, 2 error (the message says which).

    With several faces in a photo the largest face nearest the centre is used unless --face-a/--face-b pick one.
    The answer names the false-accept rate its threshold stands for, and says "uncertain" (with the reason) when a
    face is too small, blurred or turned for a reliable decision.
    """
    from ..pipeline import shared_analysis

    try:
        result = shared_analysis(embedder=model, flip=flip).verify(
            photo_a, photo_b, threshold=threshold, far=far, face_a=face_a, face_b=face_b, names=(photo_a, photo_b))
    except FacelabError as err:
        # verify's contract for scripts is 0 / 1 / 2; the error's own code is in the message and the JSON.
        if as_json:
            echo_json({"error": {"code": err.code, "message": str(err)}})
        click.echo(f"facelab: error: {err}", err=True)
        sys.exit(EXIT_USAGE)
    if as_json:
        echo_json(result.to_dict())
    else:
        # the threshold and the false-accept rate it stands for, always: "same" is only as good as that rate
        click.echo(f"{'SAME' if result.same else 'DIFFERENT'} person: similarity {result.similarity:.3f}, "
                   f"threshold {result.point.threshold:.4g} ({result.model}, {result.point.label})")
        for reason in result.uncertain:
            click.echo(f"  uncertain: {reason}")
        for f in result.faces:
            if f["of"] > 1:
                click.echo(f"  {f['photo']}: used face #{f['face']} of {f['of']} (largest near the centre; "
                           f"--face-a/--face-b to choose)")
    sys.exit(EXIT_OK if result.same else EXIT_NEGATIVE)


@click.command()
@click.argument("photos", nargs=-1, required=True)
@click.option("-o", "--output", type=click.Path(), callback=output_file,
              help="Write .npy (vectors), .json (vectors and metadata) or .parquet (both, one row per face; "
                   "needs pyarrow, in the [ray] extra); default: JSON to stdout.")
@click.option("--model", type=EMBEDDER_CHOICES, default="sface", show_default=True)
@click.option("--flip", is_flag=True, help="Average each face with its mirror image.")
@click.option("--all-faces", is_flag=True, help="Embed every face, not only the main one of each photo.")
@click.option("--workers", type=click.IntRange(1, 4096), default=None, help="--engine ray: Ray actors "
              "[default: the cluster's CPUs / --cpus-per-worker].")
@engine_options
@handle_errors
def embed(photos, output, model, flip, all_faces, workers, engine, ray_address, cpus_per_worker):
    """Write face embeddings (unit vectors, compare by dot product), tagged with the model that made them.

    .npy output holds a float32 matrix, one row per face, and a sidecar .json naming files, faces and the model.
    """
    import numpy as np

    jobs = [(src, model, flip, all_faces) for src in photos]
    if engine == "ray":
        from ..distributed import ray_engine

        ray_engine.require_ray("embed --engine ray")
        results = ray_engine.map_photos(jobs, embed_photo, workers=workers, cpus_per_worker=cpus_per_worker,
                                        address=ray_address)
    else:
        results = map(embed_photo, jobs)
    rows, vectors, codes, model_name = [], [], [], model
    for res in results:
        if "error" in res:
            codes.append(res["error"][0])
            click.echo(f"facelab: error: {res['error'][1]}", err=True)
            continue
        for row, vector in zip(res["rows"], res["vectors"]):
            rows.append({**row, "embedding": [round(float(v), 6) for v in vector]})
            vectors.append(vector)
        model_name = res["model"]
        codes.append(EXIT_OK)
    doc = {"model": model_name, "dim": len(vectors[0]) if vectors else None, "faces": rows}
    if output and output.endswith(".npy"):
        # no face anywhere: an empty (0, dim) matrix, so scripts that load the file still get the right shape
        matrix = np.array(vectors, dtype=np.float32) if vectors else np.zeros((0, _model_dim(model)), np.float32)
        np.save(output, matrix)
        meta = {**doc, "faces": [{k: v for k, v in r.items() if k != "embedding"} for r in rows]}
        Path(output).with_suffix(".json").write_text(json.dumps(meta, indent=2))
        click.echo(f"wrote {len(vectors)} embeddings ({model_name}) to {output} (+ .json)", err=True)
    elif output and output.endswith(".parquet"):
        _write_parquet(output, rows, vectors, model_name)
        click.echo(f"wrote {len(vectors)} embeddings ({model_name}) to {output}", err=True)
    elif output:
        Path(output).write_text(json.dumps(doc, indent=2))
        click.echo(f"wrote {len(vectors)} embeddings ({model_name}) to {output}", err=True)
    else:
        echo_json(doc)
    sys.exit(batch_exit_code(codes))


def _write_parquet(output: str, rows: list[dict], vectors: list, model: str) -> None:
    """One row per face: file, face, box, model, embedding (float32 list), for Spark / DuckDB / Ray Data."""
    from ..extras import require

    require("ray", "embed -o FILE.parquet")
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"file": [r["file"] for r in rows], "face": [r["face"] for r in rows],
                      "box": [r["box"] for r in rows], "model": [r["model"] for r in rows],
                      "embedding": pa.array([np.asarray(v, np.float32) for v in vectors],
                                            type=pa.list_(pa.float32()))})
    pq.write_table(table.replace_schema_metadata({"facelab_model": model}), output)


def embed_photo(job: tuple[str, str, bool, bool]) -> dict:
    """One photo's embeddings (the main face, or every face): {"rows", "vectors", "model"} or {"error": (exit
    code, message)}. Module-level and plain data in, plain data out, so it can run in a Ray actor too."""
    from ..images import load_image
    from ..pipeline import pick_main_face, shared_analysis

    src, model, flip, all_faces = job
    analysis = shared_analysis(embedder=model, flip=flip)
    try:
        rgb = load_image(src)
        faces = analysis.detect_rgb(rgb)
        if not faces:
            raise NoFaceError(f"{src}: no face found")
        chosen = faces if all_faces else [pick_main_face(faces, rgb.shape)]
        analysis.embed_faces(rgb, chosen)
    except FacelabError as err:
        return {"error": (err.exit_code, str(err))}
    return {"rows": [{"file": src, "face": f.index, "box": f.to_dict()["box"], "model": f.embedding_model}
                     for f in chosen],
            "vectors": [f.embedding for f in chosen], "model": analysis.embedder.name}


def _model_dim(model: str) -> int:
    from ..gallery.store import model_info

    return model_info(model).dim


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
@handle_errors
def models(ctx, as_json):
    """Every registered model: task, carrier package, file, sha256, licence, size, installed and intact."""
    if ctx.invoked_subcommand is not None:
        return
    from ..models.registry import all_models, installed_version, model_path, model_status

    rows = []
    for spec in all_models().values():
        status = model_status(spec)
        try:
            path = str(model_path(spec)) if not spec.builtin else spec.builtin
        except FacelabError:
            path = None
        rows.append({**spec.to_dict(), "status": status, "installed_version": installed_version(spec),
                     "location": path})
    if as_json:
        echo_json(rows)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title="facelab models", show_lines=False)
    for col in ("name", "task", "package", "licence", "default ok", "size", "sha256", "status"):
        table.add_column(col)
    for r in rows:
        size = f"{r['bytes'] / 1e6:.1f} MB" if r.get("bytes") else "-"
        pkg = (f"{r['package']}=={r['version']}" if r.get("version") else r["package"]) if r.get("package") else "-"
        sha = (r.get("sha256") or "-")[:12]
        colour = {"ok": "green", "builtin": "green"}.get(r["status"], "red")
        table.add_row(r["name"], r["task"], pkg, r["licence"], "yes" if r["default_ok"] else "no", size, sha,
                      f"[{colour}]{r['status']}[/{colour}]")
    Console(width=200).print(table)
    bad = [r["name"] for r in rows if r["status"] not in ("ok", "builtin")]
    if bad:
        click.echo(f"not usable: {', '.join(bad)} (run `make install`)", err=True)
