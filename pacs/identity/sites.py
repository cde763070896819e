"""Creating and resolving consortiums, sites and site AEs (used by the CLI, the receiver and
later by ``reading``'s administration)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs import events
from pacs.identity.addresses import address_allowed, parse_allowed
from pacs.index.db import append_change
from pacs.index.models import Consortium, Site, SiteAE, Tier

# PS3.3 C.12.1.1.2 defined terms we accept as an assumed character set, with the Python codec.
ASSUMABLE_CHARSETS = {
    "GB18030": "gb18030",
    "GBK": "gbk",
    "ISO_IR 192": "utf_8",
    "ISO_IR 100": "latin_1",
    "ISO_IR 6": "ascii",
}


class IdentityError(ValueError):
    """An administrative request that cannot be carried out; the message names the fix. ``code``
    names the refusal for a page to say it in its user's language (the catalogues' key
    ``error.<code>``, filled with ``params``), ``field`` the input at fault."""

    def __init__(self, message: str, *, code: str = "invalid", field: str | None = None, **params: str | int) -> None:
        super().__init__(message)
        self.code = code
        self.field = field
        self.params = params


@dataclass(frozen=True)
class CallingSite:
    """Who is calling: the site AE that matched a calling AE title and source address."""

    site_id: int
    site_name: str
    consortium_id: int
    ae_title: str
    assumed_charset: str | None


def valid_ae_title(title: str) -> bool:
    # PS3.5 6.2: AE is 16 characters at most, no backslash or control characters, not all spaces.
    return 0 < len(title.strip()) <= 16 and all(32 <= ord(c) < 127 and c != "\\" for c in title)


def get_or_create_consortium(session: Session, name: str, timezone: str = "Asia/Shanghai") -> Consortium:
    consortium = session.scalar(select(Consortium).where(Consortium.name == name))
    if consortium is None:
        consortium = Consortium(name=name, timezone=timezone)
        session.add(consortium)
        session.flush()
    return consortium


def _check_site(*, name: str, tier: str, return_ae_title: str | None, return_port: int | None) -> None:
    if not name.strip() or len(name) > 200:
        raise IdentityError("a site's name is 1–200 characters", code="site_name_invalid", field="name")
    if tier not in {t.value for t in Tier}:
        raise IdentityError(
            f"tier must be one of {', '.join(t.value for t in Tier)}, not {tier!r}", code="tier_invalid", field="tier"
        )
    if return_ae_title is not None and not valid_ae_title(return_ae_title):
        raise IdentityError(
            f"return AE title {return_ae_title!r} is not a valid AE title (1–16 printable characters)",
            code="ae_title_invalid",
            field="return_ae_title",
            title=return_ae_title,
        )
    if return_port is not None and not 0 < return_port < 65536:
        raise IdentityError(
            f"return port {return_port} is not a TCP port", code="port_invalid", field="return_port", port=return_port
        )


def add_site(
    session: Session,
    *,
    consortium: str,
    name: str,
    tier: str,
    contact: str | None = None,
    return_ae_title: str | None = None,
    return_host: str | None = None,
    return_port: int | None = None,
    return_report_image: bool = False,
    actor: str = "cli",
) -> Site:
    """Create a site (and its consortium when new). Raises ``IdentityError`` on a bad tier,
    a bad return AE title, or a site of that name already in the consortium."""
    _check_site(name=name, tier=tier, return_ae_title=return_ae_title, return_port=return_port)
    owner = get_or_create_consortium(session, consortium)
    if session.scalar(select(Site).where(Site.consortium_id == owner.id, Site.name == name)):
        raise IdentityError(
            f"site {name!r} already exists in consortium {consortium!r}", code="site_exists", field="name", name=name
        )
    site = Site(
        consortium_id=owner.id,
        name=name,
        tier=tier,
        contact=contact,
        return_ae_title=return_ae_title,
        return_host=return_host,
        return_port=return_port,
        return_report_image=return_report_image,
    )
    session.add(site)
    session.flush()
    append_change(session, events.SITE_CREATED, site_id=site.id, actor=actor, name=name, tier=tier)
    return site


def update_site(
    session: Session,
    site: Site,
    *,
    name: str,
    tier: str,
    contact: str | None,
    return_ae_title: str | None,
    return_host: str | None,
    return_port: int | None,
    return_report_image: bool,
    actor: str = "cli",
) -> dict[str, list[object]]:
    """Change a site's name, tier, contact and return destination; returns what changed (old
    and new values, also in the change log). Raises ``IdentityError`` as ``add_site`` does."""
    _check_site(name=name, tier=tier, return_ae_title=return_ae_title, return_port=return_port)
    if name != site.name and session.scalar(
        select(Site.id).where(Site.consortium_id == site.consortium_id, Site.name == name)
    ):
        raise IdentityError(
            f"site {name!r} already exists in the consortium", code="site_exists", field="name", name=name
        )
    wanted: dict[str, object] = {
        "name": name,
        "tier": tier,
        "contact": contact,
        "return_ae_title": return_ae_title,
        "return_host": return_host,
        "return_port": return_port,
        "return_report_image": return_report_image,
    }
    changed: dict[str, list[object]] = {
        key: [getattr(site, key), value] for key, value in wanted.items() if getattr(site, key) != value
    }
    if changed:
        for key, (_, value) in changed.items():
            setattr(site, key, value)
        session.flush()
        append_change(session, events.SITE_UPDATED, site_id=site.id, actor=actor, changed=changed)
    return changed


def find_site(session: Session, name: str) -> Site:
    sites = session.scalars(select(Site).where(Site.name == name)).all()
    if not sites:
        raise IdentityError(f"no site named {name!r}: see `yunying site list`", code="site_unknown", name=name)
    if len(sites) > 1:
        raise IdentityError(
            f"{len(sites)} sites are named {name!r} in different consortiums; use the site id",
            code="site_ambiguous",
            name=name,
        )
    return sites[0]


def add_site_ae(
    session: Session,
    *,
    site: Site,
    ae_title: str,
    allowed_address: str,
    assumed_charset: str | None = None,
    description: str | None = None,
    actor: str = "cli",
) -> SiteAE:
    """Allow ``ae_title`` calling from ``allowed_address`` for ``site``. Raises
    ``IdentityError`` on a bad title, address or charset, or when the pair is already taken."""
    if not valid_ae_title(ae_title):
        raise IdentityError(
            f"AE title {ae_title!r} is not valid: 1–16 printable ASCII characters, no backslash",
            code="ae_title_invalid",
            field="ae_title",
            title=ae_title,
        )
    try:
        parse_allowed(allowed_address)
    except ValueError as exc:
        raise IdentityError(str(exc), code="address_invalid", field="allowed_address", address=allowed_address) from exc
    if assumed_charset is not None and assumed_charset not in ASSUMABLE_CHARSETS:
        raise IdentityError(
            f"assumed charset must be one of {', '.join(ASSUMABLE_CHARSETS)}, not {assumed_charset!r}",
            code="charset_invalid",
            field="assumed_charset",
        )
    title = ae_title.strip()
    if session.scalar(select(SiteAE).where(SiteAE.ae_title == title, SiteAE.allowed_address == allowed_address)):
        raise IdentityError(
            f"AE {title} from {allowed_address} is already configured",
            code="ae_exists",
            field="ae_title",
            title=title,
            address=allowed_address,
        )
    entry = SiteAE(
        site_id=site.id,
        ae_title=title,
        allowed_address=allowed_address,
        assumed_charset=assumed_charset,
        description=description,
    )
    session.add(entry)
    session.flush()
    append_change(
        session, events.SITE_AE_ADDED, site_id=site.id, actor=actor, ae_title=title, allowed_address=allowed_address
    )
    return entry


def remove_site_ae(session: Session, entry: SiteAE, *, actor: str = "cli") -> None:
    """Stop accepting ``entry``'s AE title from its address (receivers see it within their AE
    cache time, ``YUNYING_AE_CACHE_S``). Studies it sent stay the site's."""
    site_id, title, address = entry.site_id, entry.ae_title, entry.allowed_address
    session.delete(entry)
    session.flush()
    append_change(
        session, events.SITE_AE_REMOVED, site_id=site_id, actor=actor, ae_title=title, allowed_address=address
    )


@dataclass(frozen=True)
class SiteAEEntry:
    """One row of the AE allow-list, detached from the session (the receiver caches them)."""

    site_id: int
    site_name: str
    consortium_id: int
    ae_title: str
    allowed_address: str
    assumed_charset: str | None


def load_site_aes(session: Session) -> list[SiteAEEntry]:
    rows = session.execute(select(SiteAE, Site).join(Site, Site.id == SiteAE.site_id)).all()
    return [
        SiteAEEntry(
            site.id, site.name, site.consortium_id, entry.ae_title, entry.allowed_address, entry.assumed_charset
        )
        for entry, site in rows
    ]


def match_calling_site(entries: list[SiteAEEntry], calling_ae: str, address: str) -> CallingSite | None:
    """The entry matching this calling AE title and source address, or ``None``.

    When several match (a /24 and a single host), the most specific network wins.
    """
    title = calling_ae.strip()
    matches = [e for e in entries if e.ae_title == title and address_allowed(address, e.allowed_address)]
    if not matches:
        return None
    best = max(matches, key=lambda e: parse_allowed(e.allowed_address).prefixlen)
    return CallingSite(best.site_id, best.site_name, best.consortium_id, best.ae_title, best.assumed_charset)
