#!/usr/bin/env python3
"""Build the map label glyphs (signed-distance-field PBFs) from the installed Noto Sans CJK KR.

A MapLibre style that draws text names a ``glyphs`` URL; MapLibre fetches from it the range
of 256 code points holding every character it cannot draw locally (Latin letters, digits,
spaces and punctuation always; Hangul too in clients without local ideograph rendering,
such as MapLibre Native).  A range that fails to load leaves its characters out of every
label, so the platform serves them itself, offline: this script writes one file per range,
``gis_platform/static/glyphs/<fontstack>/<start>-<end>.pbf``, for all 256 ranges of the
Basic Multilingual Plane (an empty, valid file where the font has no character), so no
glyph request of a style of ours can fail.

The format is the one fontnik (Mapbox's generator, a native Node addon that cannot be
built offline) writes: glyphs drawn at 24 px with a 3 px border, as a signed distance field
of radius 8 px with the edge at 0.25 (value 191), each with its bitmap box, bearings and
advance (``top`` counted from the font's ascender).  The outlines are drawn by FreeType
(through Pillow) at 4x and the distances measured on that drawing (scipy's exact Euclidean
distance transform), then averaged down to the 24 px grid.

Meant for ``make setup``: idempotent, nothing is rebuilt while the font and this script are
unchanged (about a minute otherwise, ~35 MB); ``--force`` rebuilds.  Needs the Debian
package fonts-noto-cjk.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from fontTools.ttLib import TTCollection, TTFont
from PIL import ImageFont
from scipy.ndimage import distance_transform_edt

FAMILY, STYLE = "Noto Sans CJK KR", "Regular"
FONTSTACK = f"{FAMILY} {STYLE}"            # what the styles name in text-font
OUT = Path(__file__).resolve().parent.parent / "gis_platform" / "static" / "glyphs" / FONTSTACK
SIZE, BORDER, RADIUS, CUTOFF = 24, 3, 8, 0.25   # fontnik's constants (MapLibre expects them)
SCALE = 4                                  # supersampling of the outline drawing
STAMP = ".built"


def find_font(path: str | None) -> tuple[Path, int]:
    """The font file and face index of Noto Sans CJK KR Regular (fontconfig finds it)."""
    if path:
        return Path(path), _face_index(Path(path))
    try:
        found = subprocess.run(["fc-match", "-f", "%{file}\t%{index}\t%{family}",
                                f"{FAMILY}:style={STYLE}"], capture_output=True, text=True,
                               check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        found = ""
    file, _, rest = found.partition("\t")
    index, _, families = rest.partition("\t")
    if not file or FAMILY not in families.split(","):
        sys.exit(f"build-glyphs: {FAMILY} is not installed (apt-get install -y fonts-noto-cjk)")
    return Path(file), int(index or 0)


def _face_index(path: Path) -> int:
    if path.suffix.lower() not in (".ttc", ".otc"):
        return 0
    for i, face in enumerate(TTCollection(str(path), lazy=True)):
        if face["name"].getDebugName(4) == FONTSTACK:
            return i
    sys.exit(f"build-glyphs: {path} holds no face named {FONTSTACK!r}")


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes, *, signed: bool = False) -> bytes:
    """One protobuf field: a varint (zig-zag for sint32) or length-delimited bytes."""
    if isinstance(value, bytes):
        return _varint(number << 3 | 2) + _varint(len(value)) + value
    if signed:
        value = (value << 1) ^ (value >> 31)
    return _varint(number << 3) + _varint(value)


def glyph_message(code: int, font: ImageFont.FreeTypeFont) -> bytes:
    """The ``glyph`` message of one character (glyphs.proto: id, bitmap, width, height, left,
    top, advance), drawn with ``font`` (at SIZE * SCALE px)."""
    advance = round(font.getlength(chr(code)) / SCALE)
    mask, (ox, oy) = font.getmask2(chr(code), mode="L", anchor="ls")   # origin on the baseline
    ink = np.asarray(mask, dtype=np.uint8).reshape(mask.size[1], mask.size[0])
    rows, cols = np.nonzero(ink)
    if not len(rows):                   # a space: an advance, nothing to draw
        return _field(1, code) + _field(3, 0) + _field(4, 0) + _field(5, 0, signed=True) + \
            _field(6, 0, signed=True) + _field(7, advance)
    ink = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    x0, y0 = ox + cols.min(), oy + rows.min()           # the ink's top-left (y down)
    left, top = math.floor(x0 / SCALE), math.ceil(-y0 / SCALE)
    width = math.ceil((x0 + ink.shape[1]) / SCALE) - left
    height = top - math.floor(-(y0 + ink.shape[0]) / SCALE)
    return (_field(1, code) + _field(2, sdf(ink, x0 - left * SCALE, y0 + top * SCALE, width, height))
            + _field(3, width) + _field(4, height) + _field(5, left, signed=True)
            + _field(6, top - ascender_px(font), signed=True) + _field(7, advance))


def sdf(ink: np.ndarray, dx: int, dy: int, width: int, height: int) -> bytes:
    """The (width + 2 BORDER) x (height + 2 BORDER) distance field of ``ink`` (the drawing at
    SCALE, placed ``dx``, ``dy`` drawn pixels into the glyph's box), top row first."""
    inside = np.zeros(((height + 2 * BORDER) * SCALE, (width + 2 * BORDER) * SCALE), bool)
    x, y = BORDER * SCALE + dx, BORDER * SCALE + dy
    # Half covered or more is inside; a hairline fainter than that everywhere still shows.
    inside[y:y + ink.shape[0], x:x + ink.shape[1]] = ink >= min(128, int(ink.max()))
    # Distance from each drawn pixel's centre to the outline, in drawn pixels (the outline
    # lies half a pixel beyond the last pixel on either side), negative inside.
    outside = distance_transform_edt(~inside) - 0.5
    within = distance_transform_edt(inside) - 0.5
    signed = np.where(inside, -within, outside)
    cells = signed.reshape(height + 2 * BORDER, SCALE, width + 2 * BORDER, SCALE).mean(axis=(1, 3))
    value = 255 - np.clip(cells / SCALE * (256 / RADIUS) + CUTOFF * 256, 0, 255)
    return value.astype(np.uint8).tobytes()


def ascender_px(font: ImageFont.FreeTypeFont) -> int:
    """The font's ascender at SIZE px, rounded up (FreeType's size metrics, as fontnik)."""
    return math.ceil(font.getmetrics()[0] / SCALE - 1e-6)


def range_pbf(start: int, codes: list[int], font: ImageFont.FreeTypeFont) -> bytes:
    """One ``glyphs`` message: a fontstack with the glyphs of ``codes`` (may be none)."""
    stack = _field(1, FONTSTACK.encode()) + _field(2, f"{start}-{start + 255}".encode())
    stack += b"".join(_field(3, glyph_message(c, font)) for c in codes)
    return _field(1, stack)


def fingerprint(font_path: Path, index: int) -> str:
    """What the glyphs were built from (a digest: the stamp is served with them)."""
    st = font_path.stat()
    inputs = [str(font_path), index, st.st_size, int(st.st_mtime),
              hashlib.sha1(Path(__file__).read_bytes()).hexdigest()]
    return hashlib.sha1(json.dumps(inputs).encode()).hexdigest()


def build(font_path: Path, index: int, out: Path) -> int:
    """Write every range into ``out`` (through a temporary folder, so a half-built set is
    never served); returns the number of glyphs."""
    cmap = TTFont(str(font_path), fontNumber=index, lazy=True).getBestCmap()
    font = ImageFont.truetype(str(font_path), SIZE * SCALE, index=index)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    count = 0
    for start in range(0, 65536, 256):
        codes = [c for c in range(start, start + 256) if c in cmap]
        (tmp / f"{start}-{start + 255}.pbf").write_bytes(range_pbf(start, codes, font))
        count += len(codes)
    (tmp / STAMP).write_text(fingerprint(font_path, index))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--font", help="the Noto Sans CJK KR file, where fontconfig does not "
                        "find it")
    parser.add_argument("--out", type=Path, default=OUT, help="the fontstack folder to write")
    parser.add_argument("--force", action="store_true", help="rebuild even when up to date")
    args = parser.parse_args()
    font_path, index = find_font(args.font)
    stamp = args.out / STAMP
    if not args.force and stamp.is_file() and stamp.read_text() == fingerprint(font_path, index):
        return
    n = build(font_path, index, args.out)
    print(f"glyphs: {n} characters of {FONTSTACK} in {args.out}")


if __name__ == "__main__":
    main()
