"""Swagger UI at `/docs` and ReDoc at `/redoc`, served from files installed with the package.

FastAPI's default pages load their JavaScript, CSS, favicon and fonts from CDNs, which networks
without internet access cannot reach. The PyPI package fastapi-offline ships the same files
(Swagger UI 5, ReDoc 2). This module serves them from its `static` directory and builds the pages
with FastAPI's own HTML helpers. The `swagger-ui-bundle` package on PyPI is no alternative,
because it ships Swagger UI 4, which cannot render the OpenAPI 3.1 documents FastAPI produces.
"""

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs-assets"
ASSETS_PACKAGE = ("fastapi_offline", "static")
# Sent with both pages, so the browser loads nothing from other hosts. ReDoc 2 always requests a
# Redocly logo from cdn.redoc.ly for its sidebar and hides the image when that fails. This policy
# stops that request before it leaves the browser. The pages' own inline script and styles, the
# data: images of their CSS and ReDoc's blob: search worker stay allowed.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data:",
    "font-src 'self' data:",
    "worker-src 'self' blob:",
    "connect-src 'self'",
    "base-uri 'self'",
    "form-action 'self'",
])
SWAGGER_UI_PARAMETERS = {
    # Swagger UI would otherwise ask an online validator service to check the schema.
    "validatorUrl": None,
    "displayRequestDuration": True,
}


def install_offline_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Mount the asset files and add the two pages; create `app` with docs_url=None, redoc_url=None."""
    app.mount(ASSETS_URL, StaticFiles(packages=[ASSETS_PACKAGE]), name="docs-assets")

    @app.get(docs_url, include_in_schema=False)
    async def read_swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            oauth2_redirect_url=None,
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )
        page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return page

    @app.get(redoc_url, include_in_schema=False)
    async def read_redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        page.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        return page
