-- Distributing very large layers with Citus (sketch; validate on your cluster).
-- Run on the coordinator after `CREATE EXTENSION citus;` and adding worker nodes.
-- The catalog and the small lookup tables stay on the coordinator as reference tables;
-- only the big feature tables are sharded.

-- 1. The platform's metadata: small, read on every request -> replicated everywhere.
SELECT create_reference_table('gis_meta.layers');

-- 2. A big layer, e.g. the underground facilities (millions of lines).
--    Shard by a column that every heavy query can filter on.  District code keeps a
--    district's statistics, dig-checks and most tiles on one shard; co-locate layers that
--    are joined (roads, facilities, permits) on the same key.
SELECT create_distributed_table('gis_data.underground_facilities', 'district_code',
                                shard_count => 32);
SELECT create_distributed_table('gis_data.roads', 'district_code',
                                colocate_with => 'gis_data.underground_facilities');

-- 3. Spatial indexes are created per shard automatically from the parent's GiST index.
-- 4. ST_AsMVT is a parallel-safe aggregate with a combine function: a tile query that
--    spans shards is answered by per-shard partial aggregates merged on the coordinator.
--    Check with EXPLAIN that the tile query is pushed down, and compare against the
--    single-node figures in bench/RESULTS.md before switching production traffic.
