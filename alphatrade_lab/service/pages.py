"""The dashboard page: ``GET /`` and its static files, charted with the plotly.js that ships
inside the installed ``plotly`` package (served by the app itself: no CDN, nothing external).

Routes
------
``GET /``
    ``static/index.html``; every response of this module carries a Content-Security-Policy
    that limits scripts, styles, images and connections to the app's own origin.
``GET /static/{name}``
    ``dashboard.js`` and ``dashboard.css`` (revalidated with an ETag on every load).
``GET /static/vendor/plotly.min.js``
    ``plotly/package_data/plotly.min.js`` of the installed plotly (cached for a day).

The page itself (vanilla JavaScript, no build step) reads the REST API (``/api/...``) and the
WebSocket (``/ws``); a token given to the page as ``?token=`` is passed on to both.

>>> from fastapi.testclient import TestClient
>>> import alphatrade_lab as atl
>>> from alphatrade_lab.service import create_app
>>> client = TestClient(create_app(atl.store.LabStore(":memory:")))
>>> page = client.get("/")
>>> page.status_code, "script-src 'self'" in page.headers["content-security-policy"]
(200, True)
>>> client.get("/static/vendor/plotly.min.js").headers["content-type"]
'text/javascript; charset=utf-8'
"""

from __future__ import annotations

import html
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, Response

from alphatrade_lab.service.security import check_token

__all__ = ["CSP", "STATIC_DIR", "plotly_js_path", "router"]

STATIC_DIR = Path(__file__).resolve().parent / "static"

#: Scripts only from the app (no inline script, no eval); plotly writes inline styles, so
#: styles allow 'unsafe-inline'; connections (REST, WebSocket) only to the app's origin.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'none'")

_HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer"}

#: The page's own files (a fixed list: no path from the request reaches the file system).
_FILES = {"dashboard.js": "text/javascript; charset=utf-8",
          "dashboard.css": "text/css; charset=utf-8"}

router = APIRouter(include_in_schema=False)


def plotly_js_path() -> Path:
    """The ``plotly.min.js`` bundled with the installed ``plotly`` package.

    Raises
    ------
    FileNotFoundError
        When the installed plotly has no bundled plotly.js (the message names the path).

    Examples
    --------
    >>> plotly_js_path().name
    'plotly.min.js'
    """
    import plotly  # type: ignore[import-untyped]  # (a runtime dependency: its plotly.js)

    path = Path(plotly.__file__).resolve().parent / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise FileNotFoundError(f"plotly.js not found at {path}: the dashboard needs the "
                                "'plotly' package with its bundled package_data/plotly.min.js")
    return path


def _asset_query(request: Request) -> str:
    """``?token=...`` for the page's asset URLs when the service requires a token and the
    page was opened with the right one in its query (a browser cannot add a header to a
    ``<script src>``); empty otherwise. Only a token the request itself carried is written."""
    expected = request.app.state.lab.token
    given = request.query_params.get("token") or ""
    if expected and given and check_token(expected, {}, {"token": given}):
        return "?token=" + quote(given, safe="")
    return ""


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    """The dashboard page."""
    text = (STATIC_DIR / "index.html").read_text(encoding="utf-8")
    text = text.replace("{{ASSET_QUERY}}", html.escape(_asset_query(request), quote=True))
    # the page may carry a token in its asset URLs: never stored by a cache
    headers = {**_HEADERS, "Cache-Control": "no-store"}
    return HTMLResponse(text, headers=headers)


def _file(request: Request, path: Path, media: str, cache: str) -> Response:
    """``path`` with an ETag (its size and modification time); 304 without a body when the
    browser's copy is current."""
    stat = path.stat()
    etag = f'"{stat.st_mtime_ns:x}-{stat.st_size:x}"'
    headers = {**_HEADERS, "Cache-Control": cache, "ETag": etag}
    given = [t.strip().removeprefix("W/") for t in
             request.headers.get("if-none-match", "").split(",")]
    if etag in given or "*" in given:
        return Response(status_code=304, headers=headers)
    return FileResponse(path, media_type=media, headers=headers, stat_result=stat)


@router.get("/static/vendor/plotly.min.js")
def plotly_js(request: Request) -> Response:
    """plotly.js from the installed plotly package (cached by browsers for a day)."""
    try:
        path = plotly_js_path()
    except FileNotFoundError:  # the message names a local path: not for the response
        raise HTTPException(status_code=404, detail="plotly.js is not bundled with the "
                            "installed plotly package") from None
    return _file(request, path, "text/javascript; charset=utf-8", "public, max-age=86400")


@router.get("/static/{name}")
def static_file(request: Request, name: str) -> Response:
    """One of the page's own files (``dashboard.js``, ``dashboard.css``)."""
    media = _FILES.get(name)
    if media is None:
        raise HTTPException(status_code=404, detail=f"no static file {name[:60]!r}; the page "
                            f"serves {sorted(_FILES)} and vendor/plotly.min.js")
    return _file(request, STATIC_DIR / name, media, "no-cache")
