"""``yunying user`` and ``yunying token``: people, service accounts and their API tokens."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer
from rich.table import Table
from sqlalchemy import select
from sqlalchemy.orm import Session

from pacs.cli_support import console, fail, load_settings, open_services
from pacs.identity.passwords import set_password
from pacs.identity.sites import IdentityError
from pacs.identity.users import (
    DEFAULT_TOKEN_DAYS,
    add_user,
    create_token,
    end_sessions,
    find_user,
    revoke_token,
    set_active,
)
from pacs.index.db import transaction
from pacs.index.models import ApiToken, Consortium, Role, Site, User
from pacs.index.types import utcnow
from pacs.service import Services

user_app = typer.Typer(help="Users and service accounts of the API.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens (bearer tokens for DICOMweb and the API).", no_args_is_help=True)
ROLES = " | ".join(r.value for r in Role)


def _services() -> Services:
    return open_services(load_settings())


@contextmanager
def _change() -> Iterator[Session]:
    """One administrative change from the command line: a transaction on the configured index,
    an ``IdentityError`` turned into the command's error message, the services closed after."""
    services = _services()
    try:
        with transaction(services.sessions) as session:
            yield session
    except IdentityError as exc:
        raise fail(str(exc)) from None
    finally:
        services.close()


@user_app.command("add")
def user_add(
    username: Annotated[str, typer.Argument(help="Login name, e.g. li.wei or fudong-ris.")],
    role: Annotated[str, typer.Option(help=ROLES)],
    site: Annotated[str | None, typer.Option(help="The site of a site user.")] = None,
    consortium: Annotated[str | None, typer.Option(help="The consortium of an admin or QA user.")] = None,
    name: Annotated[str | None, typer.Option(help="Display name.")] = None,
    service: Annotated[bool, typer.Option("--service", help="A system (RIS, workstation), not a person.")] = False,
    password_stdin: Annotated[
        bool,
        typer.Option("--password-stdin", help="Read a password for browser login from standard input (one line)."),
    ] = False,
) -> None:
    """Add a user or service account. A person logs in to the web application once he has a
    password (--password-stdin, or later `yunying user password LOGIN`)."""
    password = _read_stdin_password() if password_stdin else None
    with _change() as session:
        user = add_user(
            session,
            username=username,
            role=role,
            site=site,
            consortium=consortium,
            display_name=name,
            is_service=service,
        )
        if password is not None:
            set_password(session, user, password)
        typer.echo(
            f"User {user.id} {username!r} ({role}{', service' if service else ''}) added"
            + (", with a password" if password is not None else "")
        )


def _read_stdin_password() -> str:
    """One line of standard input, without its line end (``printf %s "$PW" | yunying …``)."""
    line = sys.stdin.readline()
    password = line[:-1] if line.endswith("\n") else line
    if not password:
        raise fail("no password on standard input: pipe one line, e.g. from a password manager")
    return password


@user_app.command("password")
def user_password(
    username: Annotated[str, typer.Argument(help="The login whose password is set.")],
    stdin: Annotated[bool, typer.Option("--stdin", help="Read the password from standard input (one line).")] = False,
) -> None:
    """Set a person's password for browser login (asked twice, not echoed; or --stdin). Every
    open browser session of the user ends."""
    password = (
        _read_stdin_password()
        if stdin
        else typer.prompt(f"New password for {username}", hide_input=True, confirmation_prompt=True)
    )
    with _change() as session:
        ended = set_password(session, find_user(session, username), password)
    typer.echo(f"password of {username!r} set; {ended} open session(s) ended")


@user_app.command("logout")
def user_logout(username: Annotated[str, typer.Argument(help="The login whose browser sessions end.")]) -> None:
    """End every browser session of a user now (a lost phone, a shared PC left logged in)."""
    with _change() as session:
        ended = end_sessions(session, find_user(session, username).id)
    typer.echo(f"{ended} open session(s) of {username!r} ended")


@user_app.command("disable")
def user_disable(username: Annotated[str, typer.Argument(help="The login to deactivate.")]) -> None:
    """Deactivate a user: his tokens and browser sessions stop working at once."""
    _set_active(username, False)


@user_app.command("enable")
def user_enable(username: Annotated[str, typer.Argument(help="The login to reactivate.")]) -> None:
    """Reactivate a user (he logs in again; his old sessions stay ended)."""
    _set_active(username, True)


def _set_active(username: str, active: bool) -> None:
    with _change() as session:
        changed = set_active(session, find_user(session, username), active)
    state = "active" if active else "deactivated"
    typer.echo(f"user {username!r} {'is now' if changed else 'was already'} {state}")


@user_app.command("list")
def user_list() -> None:
    """List users with their role and scope."""
    services = _services()
    try:
        with transaction(services.sessions) as session:
            rows = session.execute(
                select(User, Site.name, Consortium.name)
                .outerjoin(Site, Site.id == User.site_id)
                .outerjoin(Consortium, Consortium.id == User.consortium_id)
                .order_by(User.id)
            ).all()
    finally:
        services.close()
    table = Table("id", "username", "role", "service", "site", "consortium", "password", "active")
    for user, site_name, consortium_name in rows:
        table.add_row(
            str(user.id),
            user.username,
            user.role,
            "yes" if user.is_service else "",
            site_name or "—",
            consortium_name or "—",
            "yes" if user.password_hash else "—",
            "yes" if user.active else "no",
        )
    console.print(table)


@token_app.command("create")
def token_create(
    user: Annotated[str | None, typer.Option(help="The user the token acts for.")] = None,
    service: Annotated[
        str | None, typer.Option(help="A service account's name; created with --site if it does not exist.")
    ] = None,
    site: Annotated[str | None, typer.Option(help="With --service: the site it belongs to.")] = None,
    name: Annotated[str | None, typer.Option(help="What the token is for, e.g. 'OHIF at Fudong'.")] = None,
    days: Annotated[int, typer.Option(help="Days until it expires.")] = DEFAULT_TOKEN_DAYS,
) -> None:
    """Create a token and print it once (only its hash is kept)."""
    if (user is None) == (service is None):
        raise fail("give exactly one of --user U or --service NAME (with --site for a new service account)")
    with _change() as session:
        if service is not None:
            existing = session.scalar(select(User).where(User.username == service))
            if existing is None:
                if site is None:
                    raise IdentityError(f"service account {service!r} does not exist: add --site to create it")
                existing = add_user(session, username=service, role=Role.SITE, site=site, is_service=True)
            account = existing
        else:
            assert user is not None
            account = find_user(session, user)
        row, token = create_token(session, account, name=name, days=days)
        expires = row.expires_at.strftime("%Y-%m-%d") if row.expires_at else "never"
    typer.echo(token)
    typer.echo(f"token {row.id} for {account.username!r}, expires {expires}; shown once, keep it safe", err=True)


@token_app.command("list")
def token_list() -> None:
    """List tokens (never the tokens themselves)."""
    services = _services()
    try:
        with transaction(services.sessions) as session:
            rows = session.execute(
                select(ApiToken, User.username).join(User, User.id == ApiToken.user_id).order_by(ApiToken.id)
            ).all()
    finally:
        services.close()
    now = utcnow()
    table = Table("id", "user", "name", "starts with", "created", "expires", "last used", "state")
    for token, username in rows:
        state = (
            "revoked" if token.revoked_at else "expired" if token.expires_at and token.expires_at <= now else "active"
        )
        table.add_row(
            str(token.id),
            username,
            token.name or "—",
            token.prefix + "…",
            token.created_at.strftime("%Y-%m-%d"),
            token.expires_at.strftime("%Y-%m-%d") if token.expires_at else "never",
            token.last_used_at.strftime("%Y-%m-%d %H:%M") if token.last_used_at else "—",
            state,
        )
    console.print(table)


@token_app.command("revoke")
def token_revoke(token_id: Annotated[int, typer.Argument(help="The id from `yunying token list`.")]) -> None:
    """Revoke a token at once."""
    with _change() as session:
        revoke_token(session, token_id)
    typer.echo(f"token {token_id} revoked")


def register(app: typer.Typer) -> None:
    app.add_typer(user_app, name="user")
    app.add_typer(token_app, name="token")
