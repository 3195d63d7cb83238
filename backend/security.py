"""Security headers on every response: one ``after_request`` hook, with a policy per area of the site
chosen by path (docs/security.md).

- Everywhere: ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer``, no framing
  (``frame-ancestors 'none'`` and ``X-Frame-Options: DENY``), and a ``Permissions-Policy`` that grants
  no powerful feature.
- Pages (the dashboard, the API docs, the commuter app): a Content-Security-Policy with
  ``default-src 'self'`` and no inline script or style; the only other origins are the ones the
  settings name: the basemap's (``BASEMAP_STYLE_URL``, ``BASEMAP_ORIGINS``) and Firebase Auth's when
  ``FIREBASE_WEB_API_KEY`` is set.
- The commuter app (``/app/``) alone may ask for the device's position (``geolocation=(self)``): a page
  added under ``/app/`` gets that policy by its path, with no change here.
- The landing page (``/`` alone): its stylesheet, and no script.
- Everything else (the JSON API, health, metrics): ``default-src 'none'``: a JSON answer opened in a
  browser runs and loads nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import Flask, Response, request

from backend.config import Settings

# Firebase Auth's REST endpoints, which the web SDK calls to sign in with a password and to refresh tokens.
FIREBASE_AUTH_ORIGINS = ("https://identitytoolkit.googleapis.com", "https://securetoken.googleapis.com")
# Firebase web messaging's endpoints, which the commuter app's push registration calls (FIREBASE_VAPID_KEY).
FIREBASE_MESSAGING_ORIGINS = ("https://firebaseinstallations.googleapis.com", "https://fcmregistrations.googleapis.com")

_NO_FEATURES = ("accelerometer", "camera", "display-capture", "geolocation", "gyroscope", "magnetometer",
                "microphone", "payment", "usb")


def permissions_policy(allowed: tuple[str, ...] = ()) -> str:
    return ", ".join(f"{feature}=(self)" if feature in allowed else f"{feature}=()" for feature in _NO_FEATURES)


@dataclass(frozen=True)
class Area:
    """A part of the site, by path prefix, and the policies its responses carry."""

    name: str
    prefix: str
    content_security_policy: str
    permissions_policy: str
    exact: bool = False  # the path alone, not everything under it

    def covers(self, path: str) -> bool:
        return path == self.prefix if self.exact else path.startswith(self.prefix)


def origin_of(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme in ("http", "https") and parts.netloc else None


def _csp(**directives: tuple[str, ...]) -> str:
    return "; ".join(f"{name.replace('_', '-')} {' '.join(sources)}" for name, sources in directives.items())


def page_policy(settings: Settings, push: bool = False) -> str:
    """The Content-Security-Policy of the pages that show a map and sign in (dashboard, commuter app);
    ``push``: the page registers for web push when the deployment configures it (the commuter app)."""
    basemap = tuple(dict.fromkeys(filter(None, (origin_of(settings.basemap_style_url), *settings.basemap_origins))))
    firebase = FIREBASE_AUTH_ORIGINS if settings.firebase_web_api_key else ()
    if push and settings.firebase_web_api_key and settings.firebase_vapid_key:
        firebase += FIREBASE_MESSAGING_ORIGINS
    auth_domain = settings.firebase_auth_domain or f"{settings.firebase_project_id}.firebaseapp.com"
    return _csp(
        default_src=("'self'",),
        script_src=("'self'",),
        style_src=("'self'",),
        # MapLibre's controls draw their icons from data: URLs; tiles may be images, which some browsers
        # decode through blob: URLs.
        img_src=("'self'", "data:", "blob:", *basemap),
        font_src=("'self'", *basemap),
        connect_src=("'self'", *basemap, *firebase),
        # MapLibre's CSP build starts its tile workers from its own worker file (no blob: workers).
        worker_src=("'self'",),
        child_src=("'self'",),
        frame_src=(f"https://{auth_domain}",) if firebase else ("'none'",),
        object_src=("'none'",),
        base_uri=("'none'",),
        form_action=("'self'",),
        frame_ancestors=("'none'",),
    )


def areas(settings: Settings) -> tuple[Area, ...]:
    """The site's areas, most specific first; the last matches everything."""
    pages = page_policy(settings)
    return (
        Area("commuter app", "/app/", page_policy(settings, push=True), permissions_policy(allowed=("geolocation",))),
        Area("dashboard", "/dashboard", pages, permissions_policy()),
        Area("API docs", "/api/docs", _csp(
            default_src=("'self'",), script_src=("'self'",), style_src=("'self'",),
            img_src=("'self'", "data:"),  # Swagger UI's icons
            object_src=("'none'",), base_uri=("'none'",), form_action=("'self'",), frame_ancestors=("'none'",),
        ), permissions_policy()),
        # The landing page: its own stylesheet and links, nothing else (no script at all).
        Area("landing page", "/", _csp(
            default_src=("'none'",), style_src=("'self'",), img_src=("'self'",), base_uri=("'none'",),
            form_action=("'none'",), frame_ancestors=("'none'",),
        ), permissions_policy(), exact=True),
        Area("API and the rest", "/", _csp(default_src=("'none'",), base_uri=("'none'",), form_action=("'none'",),
                                          frame_ancestors=("'none'",)), permissions_policy()),
    )


def area_for(path: str, site: tuple[Area, ...]) -> Area:
    return next(area for area in site if area.covers(path))


def init_app(app: Flask) -> None:
    site = areas(app.config["SETTINGS"])

    @app.after_request
    def _security_headers(response: Response) -> Response:
        area = area_for(request.path, site)
        headers = response.headers
        headers["Content-Security-Policy"] = area.content_security_policy
        headers["Permissions-Policy"] = area.permissions_policy
        headers["X-Content-Type-Options"] = "nosniff"
        headers["Referrer-Policy"] = "no-referrer"
        headers["X-Frame-Options"] = "DENY"  # for browsers that predate frame-ancestors
        return response
