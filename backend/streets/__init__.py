"""A street network (optional input to council exports): segments loaded from GeoPackage or GeoJSON."""
