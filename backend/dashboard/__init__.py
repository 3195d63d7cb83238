"""The safety team's and councils' web dashboard at /dashboard: one page, MapLibre GL JS, the API."""
