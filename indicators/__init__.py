"""Policy indicators: definitions, values per area unit and year, hexagon grids, aggregation."""

from indicators.store import (
                                     AreaUnit,
                                     Indicator,
                                     get_indicator,
                                     list_indicators,
                                     load_values,
                                     register_area_unit,
                                     upsert_indicator,
)

__all__ = ["AreaUnit", "Indicator", "get_indicator", "list_indicators", "load_values",
           "register_area_unit", "upsert_indicator"]
