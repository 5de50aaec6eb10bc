"""``/docs``: Swagger UI from the installed ``flask-swagger-ui`` package, never a CDN.

The page works with the network cut and under a Content-Security-Policy that allows
nothing from other origins: the bundle and its stylesheet come from our own routes, and
the start-up script is a file (``viewer_files/init.js``) rather than an inline script.
Bundle files are served under their Swagger UI version, so they may be cached for a
year: an upgrade changes their URLs.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from flask import Blueprint, Response, abort, render_template, send_file, url_for

# Swagger UI's inline style attributes are set through the DOM (React's style objects),
# which style-src does not govern, so 'unsafe-inline' is not needed.  img-src allows
# data: for the icons its stylesheet embeds.
CONTENT_SECURITY_POLICY = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "form-action 'none'",
    )
)
# The only files of the bundle the page loads; nothing else of the package is served.
ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
    "favicon-32x32.png": "image/png",
}
ONE_YEAR = 365 * 24 * 3600
FILES = Path(__file__).parent / "viewer_files"


def bundle_folder() -> Path:
    return Path(str(resources.files("flask_swagger_ui") / "dist"))


def bundle_version() -> str:
    """Swagger UI's version, as the package records it ("v5.34.0" -> "5.34.0")."""
    return (bundle_folder() / "VERSION").read_text(encoding="ascii").strip().removeprefix("v")


def blueprint() -> Blueprint:
    blp = Blueprint("viewer", __name__, template_folder="viewer_files")
    folder, version = bundle_folder(), bundle_version()

    @blp.get("/docs")
    def page() -> Response:
        html = render_template(
            "api-docs.html", version=version, spec_url=url_for("api-docs.openapi_json")
        )
        # The page is small and names the versioned files: always fetch it afresh.
        return _secured(Response(html, mimetype="text/html"), cache="no-cache")

    @blp.get("/docs/<version>/init.js")
    def init_script(version: str) -> Response:
        return _asset(FILES / "init.js", "text/javascript", version)

    @blp.get("/docs/<version>/<name>")
    def asset(version: str, name: str) -> Response:
        if name not in ASSETS:
            abort(404)
        return _asset(folder / name, ASSETS[name], version)

    def _asset(path: Path, mimetype: str, requested: str) -> Response:
        if requested != version:  # an old page's URL: the file it wants is gone
            abort(404)
        response = send_file(path, mimetype=mimetype, max_age=ONE_YEAR, conditional=True)
        return _secured(response, cache=f"public, max-age={ONE_YEAR}, immutable")

    return blp


def _secured(response: Response, *, cache: str) -> Response:
    response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = cache
    return response
