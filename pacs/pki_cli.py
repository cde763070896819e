"""``yunying pki``: the consortium CA for DICOM over TLS (pacs/pki.py)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from pacs.cli_support import console, fail, load_settings, open_services
from pacs.index.db import transaction
from pacs.index.models import Site, SiteAE
from pacs.pki import PkiError, init_ca, issue_server, issue_site, issued, revoke

pki_app = typer.Typer(
    help="The consortium's certificate authority for DICOM over TLS (YUNYING_PKI_DIR, default home/pki).",
    no_args_is_help=True,
)


@pki_app.command("init")
def pki_init(
    consortium: Annotated[str, typer.Option(help="Named in the CA certificate.")],
    days: Annotated[int, typer.Option(help="CA validity.", min=30)] = 3650,
) -> None:
    """Make the CA key and certificate and an empty revocation list."""
    folder = load_settings().pki_path
    try:
        path = init_ca(folder, consortium, days=days)
    except PkiError as exc:
        raise fail(str(exc), 2) from None
    console.print(f"CA made: {path} (give it to the sites: they check the centre's certificate with it)")


@pki_app.command("issue-server")
def pki_issue_server(
    host: Annotated[list[str], typer.Option(help="A host name or address the sites dial (repeatable).")],
    days: Annotated[int, typer.Option(help="Validity (825 days at most for clients that check).", min=1)] = 825,
) -> None:
    """Issue the receiver's certificate (server.pem / server.key in the PKI folder)."""
    try:
        made = issue_server(load_settings().pki_path, host, days=days)
    except PkiError as exc:
        raise fail(str(exc), 2) from None
    console.print(f"Server certificate {made.certificate} (serial {made.serial}); set YUNYING_DICOM_TLS_PORT=2762")


@pki_app.command("issue-site")
def pki_issue_site(
    ae_title: Annotated[str, typer.Argument(help="A site AE configured with `yunying ae add`.")],
    days: Annotated[int, typer.Option(help="Validity.", min=1)] = 825,
) -> None:
    """Issue a client certificate for one site AE (CN = AE title, OU = its site)."""
    settings = load_settings()
    services = open_services(settings)
    try:
        with transaction(services.sessions, read_only=True) as session:
            site = session.scalar(
                select(Site.name).join(SiteAE, SiteAE.site_id == Site.id).where(SiteAE.ae_title == ae_title)
            )
        if site is None:
            raise fail(f"no site AE {ae_title!r}: add it first with `yunying ae add`", 2)
        made = issue_site(settings.pki_path, ae_title, site, days=days)
    except PkiError as exc:
        raise fail(str(exc), 2) from None
    finally:
        services.close()
    console.print(
        f"Certificate for {ae_title} of {site}: {made.certificate} and its key {made.key} "
        "(install both on the modality with the CA certificate ca.pem; keep the key secret)"
    )


@pki_app.command("revoke")
def pki_revoke(
    which: Annotated[str, typer.Argument(help="A serial number, or an AE title (all its certificates).")],
) -> None:
    """Revoke certificates; the receiver refuses them from the next connection on."""
    try:
        serials = revoke(load_settings().pki_path, which)
    except PkiError as exc:
        raise fail(str(exc), 2) from None
    console.print(f"Revoked {len(serials)} certificate(s): {', '.join(serials)}")


@pki_app.command("list")
def pki_list() -> None:
    """Every certificate issued, with its state."""
    table = Table("serial", "kind", "for", "issued", "revoked")
    for entry in issued(load_settings().pki_path):
        who = (entry.get("ae_title") and f"{entry['ae_title']} ({entry['site']})") or ", ".join(entry.get("hosts", []))
        table.add_row(entry["serial"], entry["kind"], who, entry["issued_at"][:16], (entry["revoked_at"] or "—")[:16])
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(pki_app, name="pki")
