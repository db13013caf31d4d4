"""The worklist web app (``carewatch serve``): ``build_app(store, settings)``."""

from __future__ import annotations

from streams.web.app import build_app
from streams.web.security import WebSettings

__all__ = ["WebSettings", "build_app"]
