"""The edge's HTTP(S) calls to the centre, always outbound (a clinic sits behind NAT): the
manifest of a study, and the site's signed reports. Authenticated with the site token.

Errors are two kinds: ``CentreUnreachable`` (the link, a timeout, a 5xx: retry later) and
``CentreRefused`` (a 4xx: retrying will not help until someone fixes the cause, which the
message names)."""

from __future__ import annotations

import json
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import urllib3

from pacs.edge.settings import EdgeSettings
from pacs.edge.throttle import RateLimiter


class CentreUnreachable(Exception):
    """No answer, or the centre is temporarily unable: retry with backoff."""


class CentreRefused(Exception):
    """The centre answered and refused: wrong token, unknown site, a bad request."""


@dataclass(frozen=True)
class ManifestAnswer:
    satisfied: bool
    missing: list[str]
    mismatched: list[str]


def _reason(response: urllib3.BaseHTTPResponse) -> str:
    try:
        body = json.loads(response.data or b"{}")
        detail = body.get("detail") if isinstance(body, dict) else None
    except ValueError:
        detail = None
    return str(detail or response.data[:200].decode("utf-8", "replace") or response.reason)


class CentreApi:
    def __init__(self, settings: EdgeSettings, limiter: RateLimiter | None = None) -> None:
        self.base = settings.centre_url.rstrip("/")
        self.token = settings.site_token
        self.limiter = limiter or RateLimiter(0)
        context = ssl.create_default_context()
        ca = settings.pki_path / "ca.pem"
        if ca.exists():  # a centre certificate from the consortium CA (`yunying pki`)
            context.load_verify_locations(cafile=str(ca))
        self.pool = urllib3.PoolManager(
            num_pools=2,
            maxsize=settings.associations + 2,  # the senders, the report puller, a manifest
            timeout=urllib3.Timeout(connect=settings.connect_timeout_s, read=settings.http_timeout_s),
            retries=False,
            ssl_context=context,
        )

    def request(
        self,
        method: str,
        path: str,
        *,
        body: bytes | Iterable[bytes] | None = None,
        headers: dict[str, str] | None = None,
        expect: tuple[int, ...] = (200,),
    ) -> urllib3.BaseHTTPResponse:
        if not self.token:
            raise CentreRefused(
                "no site token: set YUNYING_EDGE_SITE_TOKEN (`yunying token create --service …` at the centre)"
            )
        sent_headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json", **(headers or {})}
        chunked = body is not None and not isinstance(body, bytes)
        if isinstance(body, bytes) and self.limiter.capped:
            body, chunked = self.limiter.chunks([body]), True
        try:
            response = self.pool.request(
                method, self.base + path, body=body, headers=sent_headers, chunked=chunked, preload_content=True
            )
        except urllib3.exceptions.HTTPError as exc:
            raise CentreUnreachable(f"{self.base} unreachable: {exc}") from None
        if response.status in expect:
            return response
        if response.status in (401, 403):
            raise CentreRefused(
                f"the centre refused the site token ({response.status}: {_reason(response)}); "
                "ask the centre for a new one and set YUNYING_EDGE_SITE_TOKEN"
            )
        if response.status >= 500 or response.status == 429:
            raise CentreUnreachable(f"the centre answered {response.status}: {_reason(response)}")
        raise CentreRefused(f"the centre answered {response.status}: {_reason(response)}")

    def json(self, method: str, path: str, payload: Any = None) -> Any:
        body = json.dumps(payload).encode() if payload is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else None
        return json.loads(self.request(method, path, body=body, headers=headers).data or b"null")

    def send_manifest(self, study_uid: str, instances: dict[str, str]) -> ManifestAnswer:
        """Tell the centre what ``study_uid`` holds (SOP Instance UID → content digest, the sha256
        of the data set after group 0002 in native form: pacs/lossless.py); the answer says what
        it still lacks."""
        answer = self.json("PUT", f"/api/edge/manifests/{study_uid}", {"instances": instances})
        return ManifestAnswer(bool(answer["satisfied"]), list(answer["missing"]), list(answer["mismatched"]))

    def close(self) -> None:
        self.pool.clear()
