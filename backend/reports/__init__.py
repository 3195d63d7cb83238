"""Reports: what commuters submit, from the HTTP request to the row in PostGIS and its follow-up jobs."""
