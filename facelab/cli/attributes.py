"""Attribute commands: analyze (age, gender, expression, eyewear, mask, skin tone, emoticon, user classifiers) and
emoticon."""
from __future__ import annotations

from pathlib import Path

import click

from ..errors import EXIT_OK, FacelabError, NoFaceError
from .common import drawing_path, echo_json, finish_batch, handle_errors, output_file, record_failure


def _attribute_list(value: str | None):
    if not value:
        return None
    from ..attributes import resolve

    names = [n.strip() for n in value.split(",") if n.strip()]
    resolve(names)  # unknown names fail here, before any photo is read
    return names


def _summary(face) -> str:
    a = face.attributes
    parts = []
    builtin = ("age", "gender", "expression", "eyewear", "mask", "skin_tone", "emoticon")
    # then registered user classifiers, reported like the built-in classifiers
    for name in [*builtin[:-1], *(n for n in a if n not in builtin)]:
        if name not in a:
            continue
        v = a[name].get("value")
        if v is None:
            parts.append(f"{name}=? ({a[name].get('reason')})")
        elif name == "age":
            parts.append(f"age={v:.0f}")
        elif "probability" in a[name]:
            parts.append(f"{name}={v} ({a[name]['probability']:.2f})")
        elif name == "skin_tone":
            parts.append(f"skin_tone={v} (ITA {a[name]['ita']:+.0f})")
        else:
            parts.append(f"{name}={v}")
    if "emoticon" in a:
        parts.append(a["emoticon"]["emoji"])
    return " ".join(parts)


def _label(face) -> str:
    a = face.attributes
    bits = [str(a.get(n, {}).get("value")) for n in ("gender", "expression") if a.get(n, {}).get("value")]
    if a.get("age", {}).get("value") is not None:
        bits.insert(0, f"{a['age']['value']:.0f}")
    return " ".join(bits) or f"#{face.index}"


@click.command()
@click.argument("photos", nargs=-1, required=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (one record per photo).")
@click.option("--draw", type=click.Path(dir_okay=True),
              help="Write the photo with faces and labels drawn (a folder for several photos).")
@click.option("--attributes", "attributes", metavar="NAMES",
              help="Comma-separated subset (age,gender,expression,eyewear,mask,skin_tone,emoticon, or a classifier "
                   "registered with `facelab models add`); only their models run. Default: all of them.")
@handle_errors
def analyze(photos, as_json, draw, attributes):
    """Describe every face: age, gender, expression, eyewear, mask, skin tone, its emoticon and what the
    classifiers registered with `facelab models add` say (each under its model name).

    Attributes of faces that are too small, blurred or turned are withheld (null, with a reason).
    Exit code 4 if a photo has no face; 7 if some photos of several failed.
    """
    import facelab

    from ..draw import draw_faces
    from ..images import load_image, save_image

    names = _attribute_list(attributes)
    records, codes = [], []
    for src in photos:
        try:
            rgb = load_image(src)
            faces = facelab.analyze(rgb, names)
            records.append({"file": src, "width": rgb.shape[1], "height": rgb.shape[0],
                            "faces": [f.to_dict() for f in faces]})
            codes.append(EXIT_OK if faces else NoFaceError.exit_code)
            if draw:
                out = drawing_path(draw, src, len(photos), "_attributes.jpg")
                save_image(draw_faces(rgb, faces, [_label(f) for f in faces]), out)
            if not as_json:
                click.echo(f"{src}: {len(faces)} face{'s' if len(faces) != 1 else ''}")
                for f in faces:
                    click.echo(f"  #{f.index} {_summary(f)}")
            if not faces:
                click.echo(f"facelab: error: {src}: no face found", err=True)
        except FacelabError as err:
            record_failure(records, codes, src, err)
    finish_batch(records, codes, as_json)


@click.command()
@click.argument("photo")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), callback=output_file,
              help="OUT.svg or OUT.png; a photo with several faces gives OUT_0.png, OUT_1.png...")
@click.option("--size", type=click.IntRange(16, 4096), default=256, show_default=True,
              help="Picture size in pixels.")  # PNGs are drawn at 4x: 4096 px is a 16k-pixel canvas already
@click.option("--json", "as_json", is_flag=True, help="Print JSON: per face the files and the emoji string.")
@handle_errors
def emoticon(photo, output, size, as_json):
    """Draw the emoticon of every face in PHOTO (SVG or PNG) and print its emoji string."""
    import facelab

    from ..attributes.emoticon import face_shapes, to_png, to_svg

    out = Path(output)
    if out.suffix.lower() not in (".svg", ".png"):
        raise FacelabError(f"{output}: the output must end in .svg or .png")
    faces = facelab.analyze(photo, ["emoticon"])
    if not faces:
        raise NoFaceError(f"{photo}: no face found")
    records = []
    for f in faces:
        path = out if len(faces) == 1 else out.with_name(f"{out.stem}_{f.index}{out.suffix}")
        prims = face_shapes(f.attributes)
        if out.suffix.lower() == ".svg":
            path.write_text(to_svg(prims, size))
        else:
            to_png(prims, size).save(path)
        emoji = f.attributes["emoticon"]["emoji"]
        records.append({"face": f.index, "file": str(path), "emoji": emoji,
                        **{k: f.attributes[k].get("value") for k in ("expression", "eyewear", "mask", "skin_tone")}})
        if not as_json:
            click.echo(f"#{f.index} {path} {emoji}")
    if as_json:
        echo_json(records)
