"""``/api/admin/sites``: the sites of a consortium, their modality AEs (calling AE title and
the address it may call from) and their return destination — what ``yunying site add`` and
``yunying ae add`` do, for the administration page. Admins only, within their consortium; every
change is an administrative audit record in its own transaction (pacs.index.db.append_change).
A refusal is 422 with a ``code`` the page translates (deps.refused)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs.identity.sites import IdentityError, add_site, add_site_ae, remove_site_ae, update_site
from pacs.identity.users import Principal
from pacs.index.models import Role, Site, SiteAE
from reading.api.admin import administers
from reading.api.deps import AdminCaller, refused, require_role, unit_of_work
from reading.errors import NotFound

router = APIRouter(prefix="/admin", tags=["administration"])


class SiteFields(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    tier: str
    contact: str | None = Field(default=None, max_length=200)
    return_ae_title: str | None = None
    return_host: str | None = Field(default=None, max_length=255)
    return_port: int | None = None
    report_image: bool = False

    def site_fields(self) -> dict[str, Any]:
        """The keyword arguments ``add_site`` and ``update_site`` share."""
        return {
            "name": self.name,
            "tier": self.tier,
            "contact": self.contact,
            "return_ae_title": self.return_ae_title,
            "return_host": self.return_host,
            "return_port": self.return_port,
            "return_report_image": self.report_image,
        }


class SiteBody(SiteFields):
    consortium: str = Field(min_length=1, max_length=200)


class AEBody(BaseModel):
    ae_title: str
    allowed_address: str = Field(description="an IP address or a CIDR network, e.g. 10.12.0.0/24")
    assumed_charset: str | None = Field(default=None, description="GB18030, GBK, … when the modality declares none")
    description: str | None = Field(default=None, max_length=200)


def _site_json(site: Site) -> dict[str, Any]:
    return {
        "id": site.id,
        "name": site.name,
        "tier": site.tier,
        "consortium_id": site.consortium_id,
        "consortium": site.consortium.name,
        "contact": site.contact,
        "return_ae_title": site.return_ae_title,
        "return_host": site.return_host,
        "return_port": site.return_port,
        "report_image": site.return_report_image,
        "aes": [
            {
                "id": ae.id,
                "ae_title": ae.ae_title,
                "allowed_address": ae.allowed_address,
                "assumed_charset": ae.assumed_charset,
            }
            for ae in sorted(site.aes, key=lambda ae: ae.id)
        ],
    }


def _site_in_scope(session: Session, who: Principal, site_id: int) -> Site:
    require_role(who, Role.ADMIN)
    site = session.get(Site, site_id)
    if site is None or not who.scope.allows(site.id):
        raise NotFound(f"no site {site_id}")
    return site


@router.get("/sites")
def list_sites(request: Request, who: AdminCaller) -> list[dict[str, Any]]:
    """The sites the admin administers, with their AEs and return destination."""
    with unit_of_work(request, read_only=True) as session:
        statement = select(Site).order_by(Site.consortium_id, Site.name)
        if who.consortium_id is not None:
            statement = statement.where(Site.consortium_id == who.consortium_id)
        return [_site_json(site) for site in session.scalars(statement)]


@router.post("/sites", status_code=201, response_model=None)
def create_site(request: Request, who: AdminCaller, body: SiteBody) -> dict[str, Any] | JSONResponse:
    """Add a site (and its consortium when new, for an installation admin)."""
    try:
        with unit_of_work(request) as session:
            if who.consortium_id is not None:
                administers(session, who, body.consortium)
            site = add_site(session, consortium=body.consortium, **body.site_fields(), actor=who.username)
            session.refresh(site)
            return _site_json(site)
    except IdentityError as exc:
        return refused(exc)


@router.put("/sites/{site_id}", response_model=None)
def edit_site(request: Request, who: AdminCaller, site_id: int, body: SiteFields) -> dict[str, Any] | JSONResponse:
    """Change a site's name, tier, contact or return destination (its consortium stays)."""
    try:
        with unit_of_work(request) as session:
            site = _site_in_scope(session, who, site_id)
            update_site(session, site, **body.site_fields(), actor=who.username)
            return _site_json(site)
    except IdentityError as exc:
        return refused(exc)


@router.post("/sites/{site_id}/aes", status_code=201, response_model=None)
def create_site_ae(request: Request, who: AdminCaller, site_id: int, body: AEBody) -> dict[str, Any] | JSONResponse:
    """Allow a modality's calling AE title from an address (or network) for the site."""
    try:
        with unit_of_work(request) as session:
            site = _site_in_scope(session, who, site_id)
            add_site_ae(
                session,
                site=site,
                ae_title=body.ae_title,
                allowed_address=body.allowed_address,
                assumed_charset=body.assumed_charset,
                description=body.description,
                actor=who.username,
            )
            session.refresh(site)
            return _site_json(site)
    except IdentityError as exc:
        return refused(exc)


@router.delete("/sites/{site_id}/aes/{ae_id}")
def delete_site_ae(request: Request, who: AdminCaller, site_id: int, ae_id: int) -> dict[str, Any]:
    """Stop accepting one AE title from its address; the site with its remaining AEs is answered."""
    with unit_of_work(request) as session:
        site = _site_in_scope(session, who, site_id)
        entry = session.get(SiteAE, ae_id)
        if entry is None or entry.site_id != site.id:
            raise NotFound(f"site {site_id} has no AE {ae_id}")
        remove_site_ae(session, entry, actor=who.username)
        session.refresh(site)
        return _site_json(site)
