"""Heatmaps: report counts aggregated into grid cells (filled in by the heatmap issue)."""
