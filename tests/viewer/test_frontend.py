"""How the app serves the built front end: the page for every client route, hashed assets
cached for a year, a plain 404 elsewhere, and a page that says how to build when nothing is built."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
from fastapi import FastAPI

from viewer.frontend import CLIENT_ROUTES, mount_frontend


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


def test_a_missing_build_says_how_to_build_it(tmp_path: Path) -> None:
    answer = served(tmp_path / "dist").get("/worklist")
    assert answer.status_code == 503
    assert "make install" in answer.text and "npm ci" in answer.text
