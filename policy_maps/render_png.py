"""PNG rendering with matplotlib (for reports and social media).

Why matplotlib rather than a headless-browser screenshot: it needs no browser process on the
server or in a cron job, draws in about a second, is deterministic (same spec and data ->
same picture), and takes the geometries and colours straight from :class:`MapData`, so the
picture shows the same classes as the web pages.  Korean text needs a CJK font: Noto Sans
CJK KR (``fonts-noto-cjk``) is used when installed.
"""

from __future__ import annotations

import io

import numpy as np

from policy_maps.build import MapData

_FONTS = ["Noto Sans CJK KR", "Noto Sans CJK JP", "NanumGothic", "DejaVu Sans"]


def render_png(data: MapData, lang: str = "ko", year: int | None = None, *, width_px: int = 1200,
               dpi: int = 150) -> bytes:
    """The map as PNG bytes: title, choropleth, legend, source and date."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Patch, Polygon
    from shapely.geometry import shape

    year = year if year is not None else data.year
    from matplotlib import font_manager

    installed = {f.name for f in font_manager.fontManager.ttflist}
    plt.rcParams["font.family"] = [f for f in _FONTS if f in installed] or ["DejaVu Sans"]
    plt.rcParams["axes.unicode_minus"] = False
    colors = data.color_of(year)
    patches, facecolors = [], []
    for geom, color in zip(data.geometries, colors):
        g = shape(geom)
        for poly in getattr(g, "geoms", [g]):
            if poly.geom_type != "Polygon" or poly.is_empty:
                continue
            patches.append(Polygon(np.asarray(poly.exterior.coords), closed=True))
            facecolors.append(color)
    w_in = width_px / dpi
    fig = plt.figure(figsize=(w_in, w_in * 0.8), dpi=dpi)
    ax = fig.add_axes([0.02, 0.08, 0.96, 0.80])
    edge = "none" if data.spec.basemap == "none" else "white"
    ax.add_collection(PatchCollection(patches, facecolor=facecolors, edgecolor=edge, linewidth=0.3))
    minx, miny, maxx, maxy = data.bounds
    ax.set_xlim(minx, maxx)
    ax.set_ylim(miny, maxy)
    # lon/lat: stretch x by 1/cos(lat) so the city keeps its shape.
    ax.set_aspect(1 / np.cos(np.radians((miny + maxy) / 2)))
    ax.set_axis_off()
    title = data.title(lang) + (f" ({year})" if len(data.years) > 1 else "")
    fig.text(0.02, 0.965, title, fontsize=15, fontweight="bold", va="top")
    if data.description(lang):
        fig.text(0.02, 0.915, data.description(lang), fontsize=9, va="top", color="#333333")
    handles = [Patch(facecolor=r["color"], edgecolor="#999999", label=f"{r['label']} ({r['count']})")
               for r in data.legend(year, lang)]
    ax.legend(handles=handles, title=data.legend_title(lang), loc="lower right", fontsize=8,
              title_fontsize=9, frameon=True, framealpha=0.92)
    fig.text(0.02, 0.02, data.source_line(lang), fontsize=7.5, color="#444444")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    plt.close(fig)
    return buf.getvalue()
