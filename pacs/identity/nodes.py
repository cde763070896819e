"""DICOM nodes: remote AEs that may query and retrieve, and be C-MOVE destinations — and who is
calling an association (a site's modality AE or a node), with what it may see.

A node's scope is a site (it sees that site's studies) or a consortium (its sites' studies);
it is admitted only from its allowed address, like a site AE. Q/R is scoped exactly like a
DICOMweb token: what lies outside the scope is simply not found.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs import events
from pacs.identity.addresses import address_allowed, parse_allowed
from pacs.identity.sites import CallingSite, IdentityError, find_site, valid_ae_title
from pacs.identity.users import Principal, Scope
from pacs.index.db import append_change
from pacs.index.models import Consortium, DicomNode, Site

# The audit role of a DICOM node: not a user role (Role), a marker that no person logged in.
NODE_ROLE = "dicom-node"


@dataclass(frozen=True)
class NodeEntry:
    """One configured node with its scope resolved to site ids, detached from the session (the
    receiver caches them with the site AE allow-list)."""

    node_id: int
    ae_title: str
    host: str
    port: int
    allowed_address: str
    site_ids: frozenset[int]
    may_query: bool
    may_retrieve: bool
    is_move_destination: bool

    @property
    def scope(self) -> Scope:
        return Scope(self.site_ids)


@dataclass(frozen=True)
class Caller:
    """Who holds an association: a site's modality AE (which may also store) or a node."""

    ae_title: str
    address: str
    scope: Scope
    may_query: bool
    may_retrieve: bool
    site: CallingSite | None = None  # set for a site AE: C-STORE goes to this site
    node_id: int | None = None

    @property
    def principal(self) -> Principal:
        """The subject of access checks and audit records: no user and no token behind it."""
        role = "site" if self.site is not None else NODE_ROLE
        return Principal(None, f"ae:{self.ae_title}", role, True, self.scope, None)

    @classmethod
    def from_site(cls, site: CallingSite, address: str) -> Caller:
        """A site's modality AE queries and retrieves its own site's studies."""
        return cls(site.ae_title, address, Scope(frozenset({site.site_id})), True, True, site=site)

    @classmethod
    def from_node(cls, node: NodeEntry, address: str) -> Caller:
        return cls(node.ae_title, address, node.scope, node.may_query, node.may_retrieve, node_id=node.node_id)


def add_node(
    session: Session,
    *,
    ae_title: str,
    host: str,
    port: int,
    allowed_address: str,
    site: str | None = None,
    consortium: str | None = None,
    may_query: bool = True,
    may_retrieve: bool = True,
    is_move_destination: bool = True,
    description: str | None = None,
    actor: str = "cli",
) -> DicomNode:
    """Configure a node. Raises ``IdentityError`` on a bad title, port or address, a scope that
    is not exactly one of site and consortium, or an AE title already taken by a node."""
    title = ae_title.strip()
    if not valid_ae_title(ae_title):
        raise IdentityError(f"AE title {ae_title!r} is not valid: 1–16 printable ASCII characters, no backslash")
    if not 0 < port < 65536:
        raise IdentityError(f"port {port} is not a TCP port")
    if not host.strip():
        raise IdentityError("a node needs the host it receives C-MOVEs on")
    try:
        parse_allowed(allowed_address)
    except ValueError as exc:
        raise IdentityError(str(exc)) from exc
    if (site is None) == (consortium is None):
        raise IdentityError("give exactly one scope: --site NAME (its studies) or --consortium NAME (its sites')")
    site_id = consortium_id = None
    if site is not None:
        site_id = find_site(session, site).id
    else:
        consortium_id = session.scalar(select(Consortium.id).where(Consortium.name == consortium))
        if consortium_id is None:
            raise IdentityError(f"no consortium named {consortium!r} (see `yunying site list`)")
    if session.scalar(select(DicomNode.id).where(DicomNode.ae_title == title)) is not None:
        raise IdentityError(f"a node with AE title {title} exists already (see `yunying node list`)")
    node = DicomNode(
        ae_title=title,
        host=host.strip(),
        port=port,
        allowed_address=allowed_address.strip(),
        site_id=site_id,
        consortium_id=consortium_id,
        may_query=may_query,
        may_retrieve=may_retrieve,
        is_move_destination=is_move_destination,
        description=description,
    )
    session.add(node)
    session.flush()
    append_change(
        session,
        events.DICOM_NODE_ADDED,
        site_id=site_id,
        actor=actor,
        ae_title=title,
        host=node.host,
        port=port,
        allowed_address=node.allowed_address,
        consortium_id=consortium_id,
    )
    return node


def remove_node(session: Session, ae_title: str, *, actor: str = "cli") -> None:
    node = session.scalar(select(DicomNode).where(DicomNode.ae_title == ae_title.strip()))
    if node is None:
        raise IdentityError(f"no node with AE title {ae_title!r} (see `yunying node list`)")
    session.delete(node)
    append_change(session, events.DICOM_NODE_REMOVED, site_id=node.site_id, actor=actor, ae_title=node.ae_title)


def load_nodes(session: Session) -> list[NodeEntry]:
    """Every node with its scope as site ids (a consortium's sites as they are now)."""
    by_consortium: dict[int, set[int]] = {}
    for site_id, consortium_id in session.execute(select(Site.id, Site.consortium_id)):
        by_consortium.setdefault(consortium_id, set()).add(site_id)
    entries = []
    for node in session.scalars(select(DicomNode).order_by(DicomNode.id)):
        if node.site_id is not None:
            site_ids = frozenset({node.site_id})
        else:
            site_ids = frozenset(by_consortium.get(node.consortium_id or -1, set()))
        entries.append(
            NodeEntry(
                node.id,
                node.ae_title,
                node.host,
                node.port,
                node.allowed_address,
                site_ids,
                node.may_query,
                node.may_retrieve,
                node.is_move_destination,
            )
        )
    return entries


def match_calling_node(nodes: list[NodeEntry], calling_ae: str, address: str) -> NodeEntry | None:
    """The node this calling AE title is, when it calls from its allowed address and may
    query or retrieve at all; ``None`` otherwise (a pure move destination never calls in)."""
    title = calling_ae.strip()
    for node in nodes:
        if node.ae_title == title and address_allowed(address, node.allowed_address):
            return node if node.may_query or node.may_retrieve else None
    return None


def move_destination(nodes: list[NodeEntry], ae_title: str) -> NodeEntry | None:
    """The configured destination of a C-MOVE; ``None`` for an unknown one (PS3.4 C.4.2.1.4.1:
    the SCP answers 0xA801 rather than sending anywhere a peer names)."""
    title = ae_title.strip()
    return next((n for n in nodes if n.ae_title == title and n.is_move_destination), None)
