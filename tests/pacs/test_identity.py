"""Who is calling: AE title and source address against the allow-list (pure functions)."""

from __future__ import annotations

from pacs.identity.addresses import address_allowed
from pacs.identity.sites import SiteAEEntry, match_calling_site

ENTRIES = [
    SiteAEEntry(1, "Fudong", 1, "FUDONG_CT", "10.2.0.0/24", "GB18030"),
    SiteAEEntry(2, "Fudong CT room 2", 1, "FUDONG_CT", "10.2.0.15", None),
    SiteAEEntry(3, "Anfeng", 1, "ANFENG_CT", "10.3.0.7", None),
]


def test_most_specific_network_wins() -> None:
    site = match_calling_site(ENTRIES, "FUDONG_CT", "10.2.0.15")
    assert site is not None and site.site_id == 2
    site = match_calling_site(ENTRIES, "FUDONG_CT ", "10.2.0.99")  # AE titles are space padded
    assert site is not None and (site.site_id, site.assumed_charset) == (1, "GB18030")


def test_title_and_address_must_both_match() -> None:
    assert match_calling_site(ENTRIES, "FUDONG_CT", "10.3.0.7") is None
    assert match_calling_site(ENTRIES, "ANFENG_CT", "10.2.0.15") is None
    assert match_calling_site(ENTRIES, "UNKNOWN", "10.2.0.15") is None


def test_ipv4_mapped_ipv6_peer_matches_its_ipv4_entry() -> None:
    assert address_allowed("::ffff:10.2.0.15", "10.2.0.0/24")
    assert not address_allowed("not-an-address", "10.2.0.0/24")
    assert not address_allowed("fe80::1", "10.2.0.0/24")
