"""Coordinate reference systems of incoming data, with Korea's legacy datums done right.

Legacy Korean data is on the Bessel 1841 ellipsoid (Korean 1985 datum).  Files from that
era often carry an ESRI .prj that names the ellipsoid but no datum shift; transforming such
a CRS to WGS84 silently applies *no* shift and lands every feature 300-400 m off.  We
recognise those definitions by their projection parameters and substitute the matching EPSG
CRS (EPSG:5174, 2097, ...), whose Korean 1985 -> WGS84 transformation PROJ then applies.
"""

from __future__ import annotations

from pyproj import CRS
from pyproj.exceptions import CRSError

from gis_platform.errors import IngestError

# Korean 1985 (Bessel) projected CRSs, and the geographic one.
KOREAN_BESSEL_EPSG = (5174, 2097, 2096, 2098, 5173, 5175, 5176, 5177, 2099, 5178)
KOREAN_1985_GEOG = 4162
# Korean 1985 -> WGS84 (7-parameter, position vector), the commonly used national values;
# only applied when a Bessel CRS matches none of the EPSG definitions above.
KOREAN_1985_TOWGS84 = "-115.80,474.99,674.11,1.16,-2.31,-1.63,6.43"


def parse_crs(value: str | int) -> CRS:
    """A CRS from user input ('EPSG:5186', '5186', WKT, PROJ); clear error if unknown."""
    text = str(value).strip()
    if text.isdigit():
        text = f"EPSG:{text}"
    try:
        return CRS.from_user_input(text)
    except CRSError as exc:
        raise IngestError(f"Unknown CRS {value!r}: give an EPSG code such as EPSG:5186 "
                          "(Korea Central Belt 2010), EPSG:5179 (UTM-K) or EPSG:4326.") from exc


def _params(crs: CRS) -> tuple | None:
    conv = crs.coordinate_operation
    if conv is None:
        return None
    vals = []
    for p in conv.params:
        vals.append((p.code or p.name, round(float(p.value), 6)))
    return (conv.method_code or conv.method_name, tuple(sorted(vals)))


def _is_unshifted_bessel(crs: CRS) -> bool:
    ell = crs.ellipsoid
    if ell is None or "bessel" not in (ell.name or "").lower():
        return False
    datum = crs.datum
    name = (datum.name if datum is not None else "").lower()
    # A proper Korean 1985 datum already knows its shift.
    return "korean" not in name and "tokyo" not in name


def fix_legacy_crs(crs: CRS) -> tuple[CRS, str | None]:
    """Return the CRS to transform from, and a note when it was substituted."""
    if not _is_unshifted_bessel(crs):
        return crs, None
    if crs.is_geographic:
        return CRS.from_epsg(KOREAN_1985_GEOG), (
            "geographic Bessel 1841 coordinates read as Korean 1985 (EPSG:4162) so the datum "
            "shift to WGS84 is applied")
    mine = _params(crs)
    for code in KOREAN_BESSEL_EPSG:
        try:
            cand = CRS.from_epsg(code)
        except CRSError:
            continue
        if _params(cand) == mine:
            return cand, (f"Bessel 1841 projection without a datum shift recognised as EPSG:{code} "
                          f"({cand.name}); Korean 1985 -> WGS84 shift applied")
    # Bessel, but no EPSG match: add the national Helmert parameters explicitly.
    proj4 = crs.to_proj4()
    if "+towgs84" not in proj4:
        fixed = CRS.from_proj4(proj4 + f" +towgs84={KOREAN_1985_TOWGS84}")
        return fixed, ("Bessel 1841 CRS without a datum shift: Korean 1985 -> WGS84 "
                       f"parameters ({KOREAN_1985_TOWGS84}) applied")
    return crs, None


def describe(crs: CRS) -> str:
    """A short label: 'EPSG:5186' when identifiable, else the CRS name."""
    code = crs.to_epsg(min_confidence=70)
    if code:
        return f"EPSG:{code}"
    return crs.name or "custom CRS"
