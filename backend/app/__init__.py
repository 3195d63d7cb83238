"""The commuter's installable web app at /app/: a client of the public API like any phone app (docs/app.md)."""
