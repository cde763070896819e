"""The browser front end (``viewer/web``, built by Vite into ``viewer/web/dist``) served by the
same app as the API: hashed assets with a year-long cache, ``index.html`` for every client
route (the page routes itself), and a page that says how to build it when the build is missing.
Nothing here holds patient data: the pages fetch it from ``/api`` and ``/dicomweb`` with the
session cookie, where every route checks the caller."""

from __future__ import annotations

import html
import json
import os
from mimetypes import guess_type
from pathlib import Path
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, Response
from starlette.datastructures import Headers
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

DIST: Final = Path(__file__).resolve().parent / "web" / "dist"

# The client routes of viewer/web/src/main.ts; anything else stays a plain 404.
CLIENT_ROUTES: Final = ("/", "/login", "/worklist", "/read/{task_id}", "/site", "/qa", "/admin")

# Pages that open on lazily loaded chunks (Vite's manifest keys of their modules): the server names
# those chunks in the page's <head> so the browser fetches them beside the main chunk and the
# session check, rather than after them. The reading page's own chunk (18 kB) is also compiled
# ahead (modulepreload); the viewer's (Cornerstone, vtk.js, the image loader: 2.7 MB with what it
# imports) is only fetched (preload): compiling it ahead, even off the main thread, takes a core
# of a 2-core PC while the page's first requests and the opening slice's picture want it
# (viewer/web/src/viewer/preview.ts), and it runs only after that picture is on screen. Measured
# in docs/performance.md.
PRELOADED: Final = {
    "/read/": (("src/pages/reading.ts",), ("src/viewer/stack.ts", "src/viewer/heatmap.ts")),
}

# Cornerstone's decoders are WebAssembly ('wasm-unsafe-eval') run in module workers from our own
# origin; images and thumbnails come from our own DICOMweb; nothing is fetched from elsewhere.
CONTENT_SECURITY_POLICY: Final = (
    "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; worker-src 'self' blob:; "
    "img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)

NOT_BUILT: Final = """<!doctype html><html lang="en"><meta charset="utf-8"><title>Yunying: front end not built</title>
<body style="font-family: sans-serif; max-width: 40em; margin: 4em auto">
<h1>The web front end is not built</h1>
<p>The API (<code>/api</code>) and DICOMweb (<code>/dicomweb</code>) are running, but the pages are missing:
<code>{dist}/index.html</code> does not exist.</p>
<p>Build them with <code>make install</code> (or <code>cd viewer/web &amp;&amp; npm ci &amp;&amp; npm run build</code>;
Node.js 20.19 or newer), then reload this page.</p>
<p>前端页面尚未构建：请运行 <code>make install</code>，然后刷新本页。</p>
</body></html>"""


# The compressed copies the build writes beside each asset (viewer/web/scripts/compress.mjs), best
# first: on a township's 4 Mbit/s line the viewer's chunk takes 1.3 s as Brotli, 6.5 s as it is.
PRECOMPRESSED: Final = (("br", ".br"), ("gzip", ".gz"))


def _accepted_codings(scope: Scope) -> set[str]:
    """The content codings of the request's Accept-Encoding (those with q=0 left out)."""
    codings = set()
    for item in Headers(scope=scope).get("accept-encoding", "").split(","):
        name, _, params = item.strip().partition(";")
        if name and params.replace(" ", "") not in ("q=0", "q=0.0", "q=0.00", "q=0.000"):
            codings.add(name.strip().lower())
    return codings


class HashedAssets(StaticFiles):
    """Vite names every asset after its content hash: a file never changes under its name. Sent
    Brotli- or gzip-compressed when the browser accepts it and the build made the copy."""

    def file_response(
        self, full_path: str | os.PathLike[str], stat_result: os.stat_result, scope: Scope, status_code: int = 200
    ) -> Response:
        accepted = _accepted_codings(scope)
        for coding, suffix in PRECOMPRESSED:
            packed = Path(f"{os.fspath(full_path)}{suffix}")
            if coding in accepted and packed.is_file():
                response = super().file_response(packed, packed.stat(), scope, status_code)
                response.headers["Content-Type"] = guess_type(os.fspath(full_path))[0] or "application/octet-stream"
                response.headers["Content-Encoding"] = coding
                break
        else:
            response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["Vary"] = "Accept-Encoding"
        response.headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response


def _chunk_files(manifest: dict[str, Any], modules: tuple[str, ...], seen: set[str]) -> list[str]:
    """The files of the chunks of ``modules`` and of the chunks they import, leaving out the entry's
    (already in the page) and those in ``seen``."""
    files: list[str] = []
    pending = list(reversed(modules))
    while pending:
        chunk = manifest.get(pending.pop(), {})
        if chunk.get("isEntry") or "file" not in chunk or chunk["file"] in seen:
            continue
        seen.add(chunk["file"])
        files.append(chunk["file"])
        pending.extend(reversed(chunk.get("imports", [])))
    return files


def preload_links(dist: Path, compiled: tuple[str, ...], fetched: tuple[str, ...] = ()) -> str:
    """``<link rel=modulepreload>`` for the chunks of ``compiled`` and what they import, then
    ``<link rel=preload as=script>`` (fetched, not compiled) for those of ``fetched``, from Vite's
    manifest; empty when there is none."""
    try:
        manifest = json.loads((dist / ".vite" / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ""
    seen: set[str] = set()
    links = [
        f'<link rel="modulepreload" crossorigin href="/{html.escape(file)}">'
        for file in _chunk_files(manifest, compiled, seen)
    ]
    links += [
        f'<link rel="preload" as="script" crossorigin href="/{html.escape(file)}">'
        for file in _chunk_files(manifest, fetched, seen)
    ]
    return "".join(links)


def mount_frontend(app: FastAPI, dist: Path = DIST) -> None:
    """Serve the built pages of ``dist`` (or, while it is missing, how to build them)."""
    app.mount("/assets", HashedAssets(directory=dist / "assets", check_dir=False), name="assets")
    index = dist / "index.html"

    def page(request: Request) -> Response:
        headers = {"Cache-Control": "no-cache", "Content-Security-Policy": CONTENT_SECURITY_POLICY}
        if not index.is_file():
            return HTMLResponse(NOT_BUILT.format(dist=dist), status_code=503, headers={"Cache-Control": "no-store"})
        chunks = next((m for prefix, m in PRELOADED.items() if request.url.path.startswith(prefix)), None)
        links = preload_links(dist, *chunks) if chunks else ""
        if not links:
            return FileResponse(index, media_type="text/html", headers=headers)
        text = index.read_text(encoding="utf-8").replace("</head>", f"{links}</head>", 1)
        return HTMLResponse(text, headers=headers)

    for path in CLIENT_ROUTES:
        app.add_api_route(path, page, methods=["GET"], include_in_schema=False, response_class=HTMLResponse)
