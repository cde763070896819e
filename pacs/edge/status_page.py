"""The clinic's local status page (loopback by default): each study's forwarding state and the
reports that came back, each printable as its PDF. Plain ``http.server``: one page on one PC
needs no web framework, and it has no login — bind it to 127.0.0.1 or the clinic's own LAN."""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from pacs.edge.queue import StudyProgress
from pacs.edge.reports import KeptReport, kept_reports

PAGE = """<!doctype html><html lang="zh"><head><meta charset="utf-8"><title>Yunying edge</title>
<meta http-equiv="refresh" content="10"><style>body{{font-family:sans-serif;margin:1.5em}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.3em .6em;text-align:left}}
.failed{{color:#b00}}.acknowledged{{color:#070}}</style></head><body>
<h1>Yunying edge · {site}</h1><h2>Studies 检查</h2>
<table><tr><th>patient</th><th>date</th><th>modality</th><th>state</th><th>study</th></tr>{studies}</table>
<h2>Reports 报告</h2><table><tr><th>signed</th><th>study</th><th>impression</th><th>print</th></tr>{reports}</table>
</body></html>"""


def render(site: str, progress: list[StudyProgress], reports: list[KeptReport]) -> str:
    e = html.escape
    studies = "".join(
        f"<tr><td>{e(p.patient_name or '')} ({e(p.patient_id or '')})</td><td>{e(p.study_date or '')}</td>"
        f'<td>{e(p.modalities)}</td><td class="{p.state}">{e(p.describe())}</td><td>{e(p.study_uid)}</td></tr>'
        for p in progress
    )
    rows = "".join(
        f"<tr><td>{e(r.signed_at or '')}</td><td>{e(r.study_uid)}</td><td>{'⚠ ' if r.critical else ''}"
        f'{e(r.impression)}</td><td><a href="/reports/{r.report_id}.pdf">PDF</a></td></tr>'
        for r in reports
    )
    return PAGE.format(
        site=e(site),
        studies=studies or "<tr><td colspan=5>none</td></tr>",
        reports=rows or "<tr><td colspan=4>none yet</td></tr>",
    )


class StatusPage:
    def __init__(
        self, host: str, port: int, site: str, progress: Callable[[], list[StudyProgress]], reports: Path
    ) -> None:
        page = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path in ("/", "/index.html"):
                    body = render(site, progress(), kept_reports(reports)).encode()
                    self._answer(HTTPStatus.OK, "text/html; charset=utf-8", body)
                    return
                if self.path.startswith("/reports/") and self.path.endswith(".pdf"):
                    number = self.path[len("/reports/") : -len(".pdf")]
                    if number.isdigit():
                        pdf = reports / f"{int(number):08d}" / "report.pdf"
                        if pdf.exists():
                            self._answer(HTTPStatus.OK, "application/pdf", pdf.read_bytes())
                            return
                self._answer(HTTPStatus.NOT_FOUND, "text/plain", b"not found")

            def _answer(self, status: HTTPStatus, kind: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = int(page.server.server_address[1])
        self._thread = threading.Thread(target=self.server.serve_forever, name="edge-status-page", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
