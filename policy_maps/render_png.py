"""PNG rendering with matplotlib (for reports and social media, and the gallery's thumbnails).

Why matplotlib rather than a headless-browser screenshot: it needs no browser process on the
server or in a cron job, draws in about a second, is deterministic (same spec and data ->
same picture), and takes the geometries and colours straight from :class:`MapData`, so the
picture shows the same classes as the web pages.  Korean text needs a CJK font: Noto Sans
CJK KR (``fonts-noto-cjk``) is used when installed.

The download is laid out by measuring its texts with the renderer, top to bottom: the title
(wrapped to the width), the description, the map, the legend below it, the source line - so
at 600 px the title no longer runs into its subtitle and the legend never hides a district.
The thumbnail is the map alone: the gallery card around it carries the texts.  Figures are
made without pyplot (no global state: renders may run in threads side by side).
"""

from __future__ import annotations

import io
from functools import lru_cache

import numpy as np

from policy_maps.build import MapData

_FONTS = ["Noto Sans CJK KR", "Noto Sans CJK JP", "NanumGothic", "DejaVu Sans"]
THUMBNAIL_SIZE = (600, 480)          # px, the gallery card's 5:4


def render_png(data: MapData, lang: str = "ko", year: int | None = None, *, width_px: int = 1200,
               dpi: int = 150) -> bytes:
    """The map as PNG bytes: title, choropleth, legend, source and date."""
    return _png(figure(data, lang, year, width_px=width_px, dpi=dpi), dpi)


def render_thumbnail(data: MapData, year: int | None = None, *, size: tuple[int, int] = THUMBNAIL_SIZE,
                     dpi: int = 100) -> bytes:
    """The map alone, fitted to ``size`` pixels (the gallery's card image)."""
    fig = _figure(size[0] / dpi, size[1] / dpi, dpi)
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.96))
    _draw_areas(ax, data, year if year is not None else data.year)
    return _png(fig, dpi)


def figure(data: MapData, lang: str = "ko", year: int | None = None, *, width_px: int = 1200,
           dpi: int = 150):
    """The laid-out matplotlib figure of :func:`render_png` (its texts never overlap)."""
    from matplotlib.patches import Patch

    year = year if year is not None else data.year
    scale = min(max(width_px / 1200, 0.6), 1.6)
    pad = 14 * scale                                         # px around and between the parts
    font = {"family": _font_family()}
    w_in = width_px / dpi
    fig = _figure(w_in, w_in, dpi)
    renderer = fig.canvas.get_renderer()
    title = data.title(lang) + (f" ({year})" if len(data.years) > 1 else "")
    header = [(title, {"fontsize": 15 * scale, "fontweight": "bold"}),
              (data.description(lang), {"fontsize": 9 * scale, "color": "#333333"})]
    texts = [fig.text(0, 0, _wrap(renderer, fig, text, width_px - 2 * pad, props, font), va="top",
                      fontfamily=font["family"], **props) for text, props in header if text]
    handles = [Patch(facecolor=r["color"], edgecolor="#999999", label=f"{r['label']} ({r['count']})")
               for r in data.legend(year, lang)]
    legend = fig.legend(handles=handles, title=data.legend_title(lang), loc="upper left", frameon=False,
                        ncols=min(len(handles), 3 if width_px >= 700 else 2), borderaxespad=0,
                        alignment="left", prop={**font, "size": 8 * scale},
                        title_fontproperties={**font, "size": 9 * scale, "weight": "bold"})
    source = fig.text(0, 0, _wrap(renderer, fig, data.source_line(lang), width_px - 2 * pad,
                                  {"fontsize": 7.5 * scale}, font),
                      fontsize=7.5 * scale, color="#444444", va="top", fontfamily=font["family"])
    heights = [t.get_window_extent(renderer).height for t in texts]
    legend_h = legend.get_window_extent(renderer).height
    source_h = source.get_window_extent(renderer).height
    minx, miny, maxx, maxy = data.bounds
    aspect = (maxy - miny) / max((maxx - minx) * np.cos(np.radians((miny + maxy) / 2)), 1e-9)
    map_h = (width_px - 2 * pad) * min(max(aspect, 0.5), 1.2)
    total = pad + sum(h + pad / 2 for h in heights) + map_h + pad + legend_h + pad / 2 + source_h + pad
    fig.set_size_inches(w_in, total / dpi)
    y = pad                                                  # px from the top
    for text, h in zip(texts, heights):
        text.set_position((pad / width_px, 1 - y / total))
        y += h + pad / 2
    ax = fig.add_axes((pad / width_px, 1 - (y + map_h) / total, 1 - 2 * pad / width_px, map_h / total))
    _draw_areas(ax, data, year)
    y += map_h + pad
    legend.set_bbox_to_anchor((pad / width_px, 1 - y / total), transform=fig.transFigure)
    y += legend_h + pad / 2
    source.set_position((pad / width_px, 1 - y / total))
    return fig


def _figure(w_in: float, h_in: float, dpi: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w_in, h_in), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def _draw_areas(ax, data: MapData, year: int) -> None:
    """The choropleth of ``year`` on ``ax``, lon/lat stretched so the city keeps its shape."""
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Polygon
    from shapely.geometry import shape

    patches, facecolors = [], []
    for geom, color in zip(data.geometries, data.color_of(year)):
        g = shape(geom)
        for poly in getattr(g, "geoms", [g]):
            if poly.geom_type != "Polygon" or poly.is_empty:
                continue
            patches.append(Polygon(np.asarray(poly.exterior.coords), closed=True))
            facecolors.append(color)
    edge = "none" if data.spec.basemap == "none" else "white"
    ax.add_collection(PatchCollection(patches, facecolor=facecolors, edgecolor=edge, linewidth=0.3))
    minx, miny, maxx, maxy = data.bounds
    ax.set_xlim(minx, maxx)
    ax.set_ylim(miny, maxy)
    # lon/lat: stretch x by 1/cos(lat) so the city keeps its shape.
    ax.set_aspect(1 / np.cos(np.radians((miny + maxy) / 2)))
    ax.set_axis_off()


def _wrap(renderer, fig, text: str, width: float, props: dict, font: dict) -> str:
    """``text`` broken into lines no wider than ``width`` px (at spaces; a word longer than a
    line, as Korean without spaces can be, is broken between characters)."""
    probe = fig.text(0, 0, "", fontfamily=font["family"], **props)

    def fits(s: str) -> bool:
        probe.set_text(s)
        return probe.get_window_extent(renderer).width <= width

    lines: list[str] = []
    for word in text.split(" "):
        line = f"{lines[-1]} {word}" if lines else word
        if lines and fits(line):
            lines[-1] = line
            continue
        while not fits(word) and len(word) > 1:
            cut = max(i for i in range(1, len(word) + 1) if fits(word[:i]) or i == 1)
            lines.append(word[:cut])
            word = word[cut:]
        lines.append(word)
    probe.remove()
    return "\n".join(lines)


@lru_cache(maxsize=1)
def _font_family() -> list[str]:
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    return [f for f in _FONTS if f in installed] or ["DejaVu Sans"]


def _png(fig, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()
