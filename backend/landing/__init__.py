"""The site's front door at /: a small page pointing to the commuter's app, the dashboard and the API
reference (its strings in catalogues/, no script)."""
