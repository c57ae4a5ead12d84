"""Policy maps: specs, classification, rendering (folium HTML, MapLibre page, PNG), gallery."""

from policy_maps.spec import MapSpec, load_spec_file, parse_spec

__all__ = ["MapSpec", "load_spec_file", "parse_spec"]
