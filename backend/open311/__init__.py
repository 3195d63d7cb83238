"""Open311 GeoReport v2, read side: councils' systems read the reports in their area."""
