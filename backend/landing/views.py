"""Serve the landing page at /: where people who type the bare address are sent on from."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

from flask import Blueprint, render_template, request

bp = Blueprint("landing", __name__, static_folder="static", static_url_path="/landing/static",
               template_folder="templates")

CATALOGUES = Path(__file__).resolve().parent / "catalogues"
DEFAULT_LOCALE = "en"


@cache
def catalogue(locale: str) -> dict[str, str]:
    return json.loads((CATALOGUES / f"{locale}.json").read_text())


def locales() -> list[str]:
    return sorted(path.stem for path in CATALOGUES.glob("*.json"))


@bp.get("/")
def page():
    locale = request.accept_languages.best_match(locales()) or DEFAULT_LOCALE
    return (render_template("landing.html", t=catalogue(locale), locale=locale), 200,
            {"Cache-Control": "public, max-age=300", "Vary": "Accept-Language", "Content-Language": locale})
