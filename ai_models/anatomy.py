"""Which body part a series shows, from its header and its description — in the words Chinese
and English modalities write. Used to pick models (registry) and to check that the header's
Body Part Examined agrees with what the technologist typed (QC)."""

from __future__ import annotations

import re
from typing import Final

# PS3.16 Annex L (Body Part Examined defined terms) for the parts the centre reads, and the
# words found in series and study descriptions on Chinese modalities. Order matters only
# where one word contains another: none here does.
BODY_PART_WORDS: Final[dict[str, tuple[str, ...]]] = {
    "HEAD": ("头颅", "头部", "颅脑", "脑", "头", "HEAD", "BRAIN", "SKULL", "CRANIUM"),
    "NECK": ("颈部", "颈", "NECK"),
    "CHEST": ("胸部", "胸片", "胸", "肺", "CHEST", "THORAX", "LUNG"),
    "ABDOMEN": ("腹部", "上腹", "下腹", "腹", "ABDOMEN", "ABD"),
    "PELVIS": ("盆腔", "骨盆", "PELVIS"),
    "SPINE": ("脊柱", "腰椎", "颈椎", "胸椎", "SPINE", "LSPINE", "CSPINE", "TSPINE"),
    "EXTREMITY": ("四肢", "膝", "手", "足", "KNEE", "HAND", "FOOT", "EXTREMITY"),
}
# Header values that mean the same part as our canonical term.
_SYNONYMS: Final[dict[str, str]] = {"BRAIN": "HEAD", "SKULL": "HEAD", "THORAX": "CHEST", "LUNG": "CHEST"}


def canonical_body_part(value: str | None) -> str | None:
    """The canonical term for a Body Part Examined value (``None`` when empty)."""
    if not value or not value.strip():
        return None
    term = value.strip().upper()
    return _SYNONYMS.get(term, term)


def body_parts_named(description: str | None) -> set[str]:
    """Body parts a free-text description names (头颅CT平扫 → {HEAD}; "Chest PA" → {CHEST}).

    颈椎 (the cervical spine) is a spine, not a neck; a description naming two parts (胸腹部)
    gives both."""
    if not description:
        return set()
    text = description.upper()
    # ASCII words must stand alone: "HEAD" in "FOREHEAD" does not name a head CT.
    tokens = set(re.findall(r"[A-Z0-9]+", text))
    found: set[str] = set()
    for part, words in BODY_PART_WORDS.items():
        for word in words:
            if word in tokens if word.isascii() else word in text:
                found.add(part)
                break
    if "SPINE" in found:
        found.discard("NECK")  # 颈椎 is the cervical spine, not the neck
    return found
