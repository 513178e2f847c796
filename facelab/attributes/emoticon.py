"""The emoticon: an avatar drawn from a face's attributes, as SVG (and PNG, drawn from the same shapes with Pillow),
plus a Unicode emoji string.

The face is filled with the measured skin colour; eyes, brows and mouth follow the expression; eyeglasses,
sunglasses and a mask are drawn when present. Shapes are kept as a small list of primitives so the SVG and PNG
renderers draw exactly the same picture (no system cairo needed).
"""
from __future__ import annotations

import numpy as np

from .base import Analyser

SIZE = 256
EXPRESSION_EMOJI = {"happy": "\U0001F604", "neutral": "\U0001F610", "sad": "\U0001F622", "angry": "\U0001F620",
                    "surprise": "\U0001F62E", "fear": "\U0001F628", "disgust": "\U0001F922"}
MASK_EMOJI, SUNGLASSES_FACE, GLASSES, PERSON = "\U0001F637", "\U0001F60E", "\U0001F453", "\U0001F9D1"
DEFAULT_SKIN = "#f2c79b"
INK = "#3b2a20"


def _curve(p0, c, p1, n=16):
    """Points of the quadratic Bezier p0 -> p1 pulled towards c."""
    t = np.linspace(0, 1, n)[:, None]
    pts = (1 - t) ** 2 * np.array(p0) + 2 * (1 - t) * t * np.array(c) + t ** 2 * np.array(p1)
    return [tuple(map(float, p)) for p in pts]


def _darker(hex_colour: str, f: float = 0.7) -> str:
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"#{int(r * f):02x}{int(g * f):02x}{int(b * f):02x}"


def shapes(expression: str | None, eyewear: str | None, mask: str | None, skin: str | None) -> list[tuple]:
    """Primitives: ("ellipse", cx, cy, rx, ry, fill, stroke, width) and ("poly", points, fill, stroke, width)."""
    skin = skin or DEFAULT_SKIN
    e = expression or "neutral"
    out: list[tuple] = [("ellipse", 128, 132, 100, 112, skin, _darker(skin), 5)]
    out += [("ellipse", 26, 140, 12, 20, skin, _darker(skin), 4), ("ellipse", 230, 140, 12, 20, skin, _darker(skin), 4)]
    lx, rx, ey = 90, 166, 118
    # brows: (inner end y, outer end y) offsets; positive = lower
    brows = {"angry": (10, -6), "sad": (-8, 6), "fear": (-10, 0), "surprise": (-14, -14), "disgust": (6, -2)}
    bi, bo = brows.get(e, (0, 0))
    if e in brows or e == "neutral":
        for x, sign in ((lx, 1), (rx, -1)):
            out.append(("poly", [(x - 18 * sign, ey - 26 + bo), (x + 16 * sign, ey - 26 + bi)], None, INK, 6))
    if eyewear != "sunglasses":
        if e == "happy":
            for x in (lx, rx):
                out.append(("poly", _curve((x - 14, ey + 4), (x, ey - 16), (x + 14, ey + 4)), None, INK, 6))
        elif e == "disgust":
            for x in (lx, rx):
                out.append(("poly", [(x - 14, ey), (x + 14, ey)], None, INK, 6))
        elif e in ("surprise", "fear"):
            for x in (lx, rx):
                out += [("ellipse", x, ey, 15, 17, "#ffffff", INK, 4), ("ellipse", x, ey + 2, 5, 6, INK, None, 0)]
        else:
            for x in (lx, rx):
                out.append(("ellipse", x, ey, 9, 11, INK, None, 0))
    if eyewear == "eyeglasses":
        for x in (lx, rx):
            out.append(("ellipse", x, ey, 27, 22, None, "#222222", 5))
        out.append(("poly", _curve((lx + 27, ey - 2), (128, ey - 10), (rx - 27, ey - 2), 8), None, "#222222", 5))
        out += [("poly", [(lx - 27, ey - 4), (30, ey - 10)], None, "#222222", 5),
                ("poly", [(rx + 27, ey - 4), (226, ey - 10)], None, "#222222", 5)]
    elif eyewear == "sunglasses":
        for x in (lx, rx):
            out.append(("poly", _lens(x, ey), "#111111", "#000000", 4))
        out += [("poly", [(lx + 30, ey - 10), (rx - 30, ey - 10)], None, "#000000", 6),
                ("poly", [(lx - 30, ey - 10), (30, ey - 14)], None, "#000000", 5),
                ("poly", [(rx + 30, ey - 10), (226, ey - 14)], None, "#000000", 5)]
        out.append(("poly", [(lx - 20, ey - 8), (lx - 10, ey - 8)], None, "#666666", 3))
    if mask in ("mask", "incorrect"):
        top = 170 if mask == "incorrect" else 146  # worn below the nose: lower edge of the mask shows the nose
        if mask == "incorrect":
            out.append(("poly", _curve((116, 150), (128, 162), (140, 150), 8), None, _darker(skin), 4))
        out.append(("poly", [(58, top), (198, top), (206, top + 40), (184, 228), (72, 228), (50, top + 40)],
                    "#cfe6f5", "#7fa7c2", 4))
        for dy in (18, 36):
            out.append(("poly", [(66, top + dy), (190, top + dy)], None, "#9cbfd6", 3))
        out += [("poly", [(58, top + 4), (24, 128)], None, "#7fa7c2", 3),
                ("poly", [(198, top + 4), (232, 128)], None, "#7fa7c2", 3)]
    else:
        out += _mouth(e)
    return out


def _lens(x, y):
    return [(x - 30, y - 12), (x + 30, y - 12), (x + 28, y + 8), (x + 14, y + 20), (x - 14, y + 20),
            (x - 28, y + 8)]


def _mouth(e: str) -> list[tuple]:
    y = 180
    if e == "happy":
        return [("poly", _curve((86, y - 8), (128, y + 48), (170, y - 8)) + [(86, y - 8)], "#7a2e2e", INK, 5)]
    if e == "sad":
        return [("poly", _curve((96, y + 16), (128, y - 14), (160, y + 16)), None, INK, 6)]
    if e == "angry":
        return [("poly", _curve((98, y + 10), (128, y - 4), (158, y + 10)), None, INK, 7)]
    if e == "surprise":
        return [("ellipse", 128, y + 4, 16, 22, "#7a2e2e", INK, 5)]
    if e == "fear":
        return [("poly", [(100, y), (156, y), (152, y + 18), (104, y + 18), (100, y)], "#ffffff", INK, 5)]
    if e == "disgust":
        return [("poly", [(96, y + 6), (110, y - 2), (124, y + 8), (140, y - 2), (160, y + 6)], None, INK, 6)]
    return [("poly", [(100, y + 4), (156, y + 4)], None, INK, 6)]


def to_svg(prims: list[tuple], size: int = SIZE) -> str:
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{size}" viewBox="0 0 {SIZE} {SIZE}">']
    for p in prims:
        if p[0] == "ellipse":
            _, cx, cy, rx, ry, fill, stroke, width = p
            parts.append(f'<ellipse cx="{cx}" cy="{cy}" rx="{rx}" ry="{ry}" fill="{fill or "none"}"'
                         f' stroke="{stroke or "none"}" stroke-width="{width}"/>')
        else:
            _, pts, fill, stroke, width = p
            d = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
            tag = "polygon" if fill else "polyline"
            parts.append(f'<{tag} points="{d}" fill="{fill or "none"}" stroke="{stroke or "none"}"'
                         f' stroke-width="{width}" stroke-linecap="round" stroke-linejoin="round"/>')
    parts.append("</svg>")
    return "\n".join(parts)


def to_png(prims: list[tuple], size: int = SIZE):
    """A PIL RGBA image of the same shapes (drawn at 4x and downscaled for smooth edges)."""
    from PIL import Image, ImageDraw

    k = 4 * size / SIZE
    img = Image.new("RGBA", (4 * size, 4 * size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(img)
    for p in prims:
        if p[0] == "ellipse":
            _, cx, cy, rx, ry, fill, stroke, width = p
            box = [(cx - rx) * k, (cy - ry) * k, (cx + rx) * k, (cy + ry) * k]
            draw.ellipse(box, fill=fill, outline=stroke, width=int(round(width * k)) if stroke else 0)
        else:
            _, pts, fill, stroke, width = p
            scaled = [(x * k, y * k) for x, y in pts]
            if fill:
                draw.polygon(scaled, fill=fill)
            if stroke and width:
                w = int(round(width * k))
                draw.line(scaled + ([scaled[0]] if fill else []), fill=stroke, width=w, joint="curve")
                for x, y in (scaled[0], scaled[-1]):  # round caps, as in the SVG
                    draw.ellipse([x - w / 2, y - w / 2, x + w / 2, y + w / 2], fill=stroke)
    return img.resize((size, size), Image.Resampling.LANCZOS)


def _value(attrs: dict, name: str):
    return (attrs.get(name) or {}).get("value")


def emoji_string(attrs: dict) -> str:
    expression, eyewear, mask = _value(attrs, "expression"), _value(attrs, "eyewear"), _value(attrs, "mask")
    face = EXPRESSION_EMOJI.get(expression, "\U0001F642")
    if eyewear == "sunglasses" and expression in (None, "happy", "neutral"):
        face = SUNGLASSES_FACE
    text = face + (MASK_EMOJI if mask in ("mask", "incorrect") else "")
    if eyewear == "eyeglasses":
        text += GLASSES
    modifier = (attrs.get("skin_tone") or {}).get("emoji_modifier")
    return text + PERSON + (modifier or "")  # the modifier applies to the person emoji, not to smileys


def face_shapes(attrs: dict) -> list[tuple]:
    return shapes(_value(attrs, "expression"), _value(attrs, "eyewear"), _value(attrs, "mask"),
                  (attrs.get("skin_tone") or {}).get("rgb"))


class Emoticon(Analyser):
    names = ("emoticon",)
    needs = ("expression", "eyewear", "mask", "skin_tone")

    def run(self, rgb, faces):  # no quality floor of its own: withheld inputs draw a neutral default
        self.predict(rgb, faces)
        return faces

    def predict(self, rgb, faces):
        for face in faces:
            face.attributes["emoticon"] = {"emoji": emoji_string(face.attributes),
                                           "svg": to_svg(face_shapes(face.attributes))}
