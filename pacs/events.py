"""Kinds of change written by ``pacs`` to the one ``changes`` table (dotted, lowercase)."""

from typing import Final

STUDY_RECEIVED: Final = "study.received"  # first instance of a study arrived
STUDY_STABLE: Final = "study.stable"  # no new instance for the stability delay
STUDY_REOPENED: Final = "study.reopened"  # an instance arrived after the study was stable
INSTANCE_STORED: Final = "instance.stored"
INSTANCE_DUPLICATE: Final = "instance.duplicate"  # same UID, same data set: nothing written
INSTANCE_NEW_VERSION: Final = "instance.new_version"  # same UIDs, same pixels, corrected header
INSTANCE_QUARANTINED: Final = "instance.quarantined"  # malformed, or same UID with other pixels
ASSOCIATION_REJECTED: Final = "association.rejected"
ORPHAN_SWEPT: Final = "storage.orphan_swept"  # an object with no index row, found by the sweep
# The hand-off to reading (DESIGN.md): appended by the AI worker when it is done with a study,
# or by reading's sweeper when no AI result came in time; it queues JOB_ROUTE_STUDY.
STUDY_READY_FOR_READING: Final = "study.ready_for_reading"
SITE_CREATED: Final = "site.created"
SITE_AE_ADDED: Final = "site.ae_added"
SITE_UPDATED: Final = "site.updated"
SITE_AE_REMOVED: Final = "site.ae_removed"
DICOM_NODE_ADDED: Final = "dicom_node.added"
DICOM_NODE_REMOVED: Final = "dicom_node.removed"
USER_CREATED: Final = "user.created"
TOKEN_CREATED: Final = "token.created"  # the token itself is never logged or stored
TOKEN_REVOKED: Final = "token.revoked"
BREAK_GLASS_OPENED: Final = "access.break_glass"  # a reader opened a study beyond his scope, with a reason
USER_GRANTED: Final = "user.granted"  # a user may now see another site's or consortium's studies
USER_PASSWORD_SET: Final = "user.password_set"  # the hash is never logged; the user's sessions end
USER_DEACTIVATED: Final = "user.deactivated"  # tokens and sessions stop working at once
USER_REACTIVATED: Final = "user.reactivated"
# Patient identity across sites (pacs/patients.py, pacs/patient_links.py).
PATIENT_LINK_CONFIRMED: Final = "patient_link.confirmed"  # a reader: a probable match is the same person
PATIENT_LINK_REJECTED: Final = "patient_link.rejected"  # a reader: a probable match is another person
PATIENT_LINK_WITHDRAWN: Final = "patient_link.withdrawn"  # QA or an admin: the decision undone, probable again
# A known patient row's new study carries another valid ID card number than the row's: the first
# is kept, an alert raised for the site's staff and the administrator.
PATIENT_NATIONAL_ID_CONFLICT: Final = "patient.national_id_conflict"

JOB_AI_PRESCREEN: Final = "ai.prescreen"  # job kind queued when a study becomes stable
JOB_ROUTE_STUDY: Final = "reading.route"  # queued with study.ready_for_reading; reading's router takes it

# Administrative changes: each is also an access-audit record, written in the same transaction
# as the change (pacs.index.db.append_change). Other packages add theirs with ``administrative``.
ADMINISTRATIVE: set[str] = {
    SITE_CREATED,
    SITE_AE_ADDED,
    SITE_UPDATED,
    SITE_AE_REMOVED,
    DICOM_NODE_ADDED,
    DICOM_NODE_REMOVED,
    USER_CREATED,
    TOKEN_CREATED,
    TOKEN_REVOKED,
    USER_GRANTED,
    USER_PASSWORD_SET,
    USER_DEACTIVATED,
    USER_REACTIVATED,
}


def administrative(*kinds: str) -> None:
    """Declare change kinds administrative (audited as such)."""
    ADMINISTRATIVE.update(kinds)
