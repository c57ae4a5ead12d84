"""OGC API Features (Parts 1-4): routes, query parsing, CQL2, SQL, spatial operators, exports."""
