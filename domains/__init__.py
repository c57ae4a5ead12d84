"""Domain layers: underground facilities, roads and road-works permits (#5).

Schemas (migration ``0003_domains.sql``, schema ``gis_domain``):

* ``facility_kinds`` — the facility vocabulary (water, sewer, gas, power, telecom, heating,
  oil, other) with Korean/English names, the horizontal and vertical clearances the
  dig-safety check applies, a typical and a maximum plausible depth of cover;
  ``facility_kind_aliases`` maps names and codes found in source files onto it.
* ``road_classes`` / ``road_class_aliases`` — arterial, collector, local, alley with their
  plausible width range and lane count (ingest validation).
* ``permits`` — road-works permits (excavation / occupancy): number, purpose, polygon,
  planned depth, period, responsible office, district and the *current* status.
  ``permit_applicants`` holds the applicant's personal data in a separate table that no
  public query reads.  ``permit_status_history`` is the append-only timeline (status,
  time, actor, office, note); a trigger enforces ``permit_transitions``
  (received → reviewed → approved | rejected; approved → works → completed) and moves the
  permit's current status.
* ``gis_data.active_works`` — a view of approved / under-way permits with public columns
  only, registered in the catalog as the public layer ``active_works`` (OGC API Features,
  tiles); a statement trigger bumps its data version on every permit change.

Modules: :mod:`.digcheck` (call-before-you-dig), :mod:`.section` (cross-sections),
:mod:`.permits` (permits and their timeline), :mod:`.ingest` (files -> facility/road
layers with per-row validation), :mod:`.render` (HTML/SVG), :mod:`.api`, :mod:`.cli`,
:mod:`.demo`.
"""
