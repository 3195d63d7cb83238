"""The WSGI entry point for gunicorn: ``gunicorn backend.wsgi:app``."""

from backend import create_app
from backend.config import prepare_process_environment

prepare_process_environment()
app = create_app()
