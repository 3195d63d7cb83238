"""Alerts: cluster detection and geofenced pushes (filled in by the alerts issue)."""
