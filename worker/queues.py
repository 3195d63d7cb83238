"""Queue names, in the order a worker serves them: a push about a cluster goes before a heatmap
increment, which goes before an export file or housekeeping."""

ALERTS = "alerts"
HEATMAP = "heatmap"
EXPORTS = "exports"
MAINTENANCE = "maintenance"

ALL = (ALERTS, HEATMAP, EXPORTS, MAINTENANCE)
