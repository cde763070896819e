"""How the app serves the built front end: the page for every client route, hashed assets
cached for a year, a plain 404 elsewhere, and a page that says how to build when nothing is built."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
from pathlib import Path

import httpx
from fastapi import FastAPI

from viewer.frontend import CLIENT_ROUTES, DIST, mount_frontend


class Served:
    """GETs against the app in process (httpx's ASGI transport)."""

    def __init__(self, dist: Path) -> None:
        self.app = FastAPI()
        mount_frontend(self.app, dist)

    def get(self, path: str) -> httpx.Response:
        async def fetch() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://yunying.test") as client:
                return await client.get(path)

        return asyncio.run(fetch())

    def sent(self, path: str, headers: dict[str, str]) -> tuple[httpx.Headers, bytes]:
        """The answer's headers and its body as sent (not decoded: a compressed body stays so)."""

        async def fetch() -> tuple[httpx.Headers, bytes]:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://yunying.test") as client:
                async with client.stream("GET", path, headers=headers) as answer:
                    assert answer.status_code == 200, path
                    return answer.headers, b"".join([chunk async for chunk in answer.aiter_raw()])

        return asyncio.run(fetch())


def served(dist: Path) -> Served:
    return Served(dist)


def test_every_client_route_answers_the_page_and_assets_are_cached_for_good(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>云影</title>", encoding="utf-8")
    (tmp_path / "assets" / "index-abc123.js").write_text("console.log(1)", encoding="utf-8")
    client = served(tmp_path)
    for path in [route.replace("{task_id}", "42") for route in CLIENT_ROUTES]:
        answer = client.get(path)
        assert answer.status_code == 200 and "云影" in answer.text, path
        assert answer.headers["cache-control"] == "no-cache"
        assert "default-src 'self'" in answer.headers["content-security-policy"]
    asset = client.get("/assets/index-abc123.js")
    assert asset.status_code == 200 and asset.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert client.get("/assets/missing.js").status_code == 404
    assert client.get("/nothing-here").status_code == 404


def test_assets_go_compressed_as_the_browser_accepts_when_the_build_made_the_copy(tmp_path: Path) -> None:
    assets = tmp_path / "assets"
    assets.mkdir()
    (tmp_path / "index.html").write_text("<!doctype html>", encoding="utf-8")
    plain = b"export const viewer = 1;\n" * 400
    (assets / "reading-abc.js").write_bytes(plain)
    (assets / "reading-abc.js.br").write_bytes(b"brotli bytes")  # the build's copies (compress.mjs)
    (assets / "reading-abc.js.gz").write_bytes(gzip.compress(plain))
    (assets / "decoder-abc.wasm").write_bytes(b"\0asm" + bytes(2000))
    (assets / "decoder-abc.wasm.gz").write_bytes(gzip.compress(b"\0asm" + bytes(2000)))
    client = served(tmp_path)
    headers, body = client.sent("/assets/reading-abc.js", {"Accept-Encoding": "gzip, deflate, br, zstd"})  # Chromium's
    assert (headers["content-encoding"], body) == ("br", b"brotli bytes")
    assert headers["content-type"].startswith("text/javascript") and headers["vary"] == "Accept-Encoding"
    assert headers["cache-control"] == "public, max-age=31536000, immutable"
    for accept in ("gzip", "br;q=0, gzip", "br; q=0.0,gzip;q=0.5"):
        headers, body = client.sent("/assets/reading-abc.js", {"Accept-Encoding": accept})
        assert headers["content-encoding"] == "gzip" and gzip.decompress(body) == plain, accept
    for accept in ("identity", "deflate", ""):
        headers, body = client.sent("/assets/reading-abc.js", {"Accept-Encoding": accept})
        assert "content-encoding" not in headers and body == plain, accept
    headers, _ = client.sent("/assets/decoder-abc.wasm", {"Accept-Encoding": "gzip, br"})  # no .br: the gzip copy
    assert headers["content-encoding"] == "gzip" and headers["content-type"] == "application/wasm"


def test_a_missing_build_says_how_to_build_it(tmp_path: Path) -> None:
    answer = served(tmp_path / "dist").get("/worklist")
    assert answer.status_code == 503
    assert "make install" in answer.text and "npm ci" in answer.text


def test_a_study_url_preloads_the_reading_and_viewer_chunks_named_in_the_build_manifest(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    (tmp_path / ".vite").mkdir()
    (tmp_path / "index.html").write_text(
        '<!doctype html><head><script type="module" src="/assets/index-abc.js"></script></head>', encoding="utf-8"
    )
    manifest = {
        "index.html": {"file": "assets/index-abc.js", "isEntry": True},
        "src/pages/reading.ts": {
            "file": "assets/reading-def.js",
            "isDynamicEntry": True,
            "imports": ["index.html"],
            "dynamicImports": ["src/viewer/stack.ts", "src/viewer/heatmap.ts"],
        },
        "src/viewer/stack.ts": {
            "file": "assets/stack-456.js",
            "isDynamicEntry": True,
            "imports": ["index.html", "_cs"],
            "dynamicImports": ["src/viewer/tools.ts"],
        },
        "src/viewer/heatmap.ts": {"file": "assets/heatmap-789.js", "isDynamicEntry": True, "imports": ["_cs"]},
        "_cs": {"file": "assets/cornerstone-123.js", "imports": ["index.html"]},
        "src/viewer/tools.ts": {"file": "assets/tools-000.js", "isDynamicEntry": True, "imports": ["_cs"]},
    }
    (tmp_path / ".vite" / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    client = served(tmp_path)
    page = client.get("/read/42")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-cache"
    assert "default-src 'self'" in page.headers["content-security-policy"]
    links = re.findall(r'<link rel="(modulepreload|preload" as="script)" crossorigin href="([^"]+)">', page.text)
    # The page's chunk compiled ahead; the viewer's and what it imports fetched only (it runs after
    # the opening slice's picture is on screen); not the tools (loaded after the first image).
    assert links == [
        ("modulepreload", "/assets/reading-def.js"),
        ('preload" as="script', "/assets/stack-456.js"),
        ('preload" as="script', "/assets/cornerstone-123.js"),
        ('preload" as="script', "/assets/heatmap-789.js"),
    ]
    assert page.text.index("modulepreload") < page.text.index("</head>")
    assert "modulepreload" not in client.get("/worklist").text  # the login page does not load the viewer
    (tmp_path / ".vite" / "manifest.json").write_text("{not json", encoding="utf-8")
    broken = client.get("/read/42")
    assert broken.status_code == 200 and "modulepreload" not in broken.text


def test_the_build_leaves_out_vtk_mesh_readers_and_webgpu() -> None:
    """vite.config.ts aliases vtk.js's mesh readers and WebGPU back end away (Cornerstone core
    imports them; Yunying uses neither): none of the built scripts holds their classes, and the
    stand-in that says why is in the viewer's chunk."""
    assert (DIST / "index.html").is_file(), "build the front end first: make web"
    scripts = {path.name: path.read_text(encoding="utf-8") for path in (DIST / "assets").glob("*.js")}
    for name, text in scripts.items():
        found = set(re.findall(r"vtk(?:WebGPU\w+|PLYReader|STLReader|OBJReader|MTLReader|XMLPolyDataReader)", text))
        assert not found, f"{name} holds {sorted(found)}"
    manifest = json.loads((DIST / ".vite" / "manifest.json").read_text(encoding="utf-8"))
    viewer_chunk = scripts[Path(manifest["src/viewer/stack.ts"]["file"]).name]
    assert "vtkOpenGLRenderWindow" in viewer_chunk  # the WebGL back end stays
    assert "mesh readers are left out of Yunying's build" in viewer_chunk
