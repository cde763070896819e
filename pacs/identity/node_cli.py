"""``yunying node``: the DICOM nodes that may query and retrieve, and receive C-MOVEs."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select

from pacs.cli_support import console, fail, load_settings, open_services
from pacs.identity.nodes import add_node, remove_node
from pacs.identity.sites import IdentityError
from pacs.index.db import transaction
from pacs.index.models import Consortium, DicomNode, Site

node_app = typer.Typer(
    help="DICOM nodes (workstations, PACS) that may C-FIND / C-MOVE / C-GET and receive C-MOVEs.",
    no_args_is_help=True,
)


@node_app.command("add")
def node_add(
    ae_title: Annotated[str, typer.Argument(help="The node's AE title (its calling AE and its move destination).")],
    host: Annotated[str, typer.Option(help="Host it receives C-MOVE sub-operations on.")],
    port: Annotated[int, typer.Option(help="Port it receives C-MOVE sub-operations on.")],
    address: Annotated[str, typer.Option(help="Source IP address or CIDR network it may call from.")],
    site: Annotated[str | None, typer.Option(help="Scope: it sees this site's studies.")] = None,
    consortium: Annotated[str | None, typer.Option(help="Scope: it sees this consortium's sites' studies.")] = None,
    query: Annotated[bool, typer.Option("--query/--no-query", help="May it C-FIND?")] = True,
    retrieve: Annotated[bool, typer.Option("--retrieve/--no-retrieve", help="May it C-MOVE / C-GET?")] = True,
    destination: Annotated[bool, typer.Option("--destination/--no-destination", help="May C-MOVEs send to it?")] = True,
    description: Annotated[str | None, typer.Option(help='E.g. "county reading room workstation".')] = None,
) -> None:
    """Configure a DICOM node with its scope: a site or a consortium (exactly one)."""
    services = open_services(load_settings())
    try:
        with transaction(services.sessions) as session:
            node = add_node(
                session,
                ae_title=ae_title,
                host=host,
                port=port,
                allowed_address=address,
                site=site,
                consortium=consortium,
                may_query=query,
                may_retrieve=retrieve,
                is_move_destination=destination,
                description=description,
            )
            console.print(f"Node {node.ae_title} ({host}:{port}, calls from {address}) added")
    except IdentityError as exc:
        raise fail(str(exc)) from None
    finally:
        services.close()


@node_app.command("list")
def node_list() -> None:
    """List the DICOM nodes with their scope and permissions."""
    services = open_services(load_settings())
    try:
        with transaction(services.sessions) as session:
            rows = session.execute(
                select(DicomNode, Site.name, Consortium.name)
                .outerjoin(Site, Site.id == DicomNode.site_id)
                .outerjoin(Consortium, Consortium.id == DicomNode.consortium_id)
                .order_by(DicomNode.ae_title)
            ).all()
    finally:
        services.close()
    table = Table("AE title", "receives at", "calls from", "scope", "query", "retrieve", "destination", "description")
    for node, site_name, consortium_name in rows:
        scope = f"site {site_name}" if site_name else f"consortium {consortium_name}"
        table.add_row(
            node.ae_title,
            f"{node.host}:{node.port}",
            node.allowed_address,
            scope,
            "yes" if node.may_query else "no",
            "yes" if node.may_retrieve else "no",
            "yes" if node.is_move_destination else "no",
            node.description or "",
        )
    console.print(table)


@node_app.command("remove")
def node_remove(ae_title: Annotated[str, typer.Argument(help="The AE title from `yunying node list`.")]) -> None:
    """Remove a node: it can no longer call in or receive C-MOVEs."""
    services = open_services(load_settings())
    try:
        with transaction(services.sessions) as session:
            remove_node(session, ae_title)
    except IdentityError as exc:
        raise fail(str(exc)) from None
    finally:
        services.close()
    console.print(f"Node {ae_title} removed")


def register(app: typer.Typer) -> None:
    app.add_typer(node_app, name="node")
