"""Renkei, the Flask application package.

Importing the package imports nothing else: the pure modules (app.errors, app.importer) work
without Flask or SQLAlchemy installed. The factory itself lives in app/factory.py.
"""
from __future__ import annotations


def create_app(config: dict | None = None):
    """Build the Flask app (see app.factory.create_app); `flask --app app …` finds this function."""
    from .factory import create_app as build

    return build(config)
