"""Kinds of change written by ``reading`` to the one ``changes`` table (dotted, lowercase).
``study.ready_for_reading`` belongs to ``pacs`` (the hand-off point, ``pacs.events``)."""

from typing import Final

from pacs.events import administrative

TASK_QUEUED: Final = "task.queued"
TASK_CLAIMED: Final = "task.claimed"
TASK_RELEASED: Final = "task.released"  # back to the queue by the reader
TASK_LEASE_EXPIRED: Final = "task.lease_expired"  # back to the queue: the reader's lease ran out
TASK_PRELIMINARY: Final = "task.preliminary"
TASK_SIGNED: Final = "task.signed"
TASK_ESCALATED: Final = "task.escalated"
TASK_AMENDED: Final = "task.amended"
TASK_ROUTE_UPDATED: Final = "task.route_updated"  # AI came late and raised the priority, etc.
TASK_SLA_BREACHED: Final = "task.sla_breached"
TASK_NEW_IMAGES: Final = "task.new_images"  # images arrived after the task was claimed or signed

REPORT_SAVED: Final = "report.saved"
REPORT_PRELIMINARY: Final = "report.preliminary"
REPORT_SIGNED: Final = "report.signed"
REPORT_ADDENDUM: Final = "report.addendum"

CRITICAL_RAISED: Final = "critical.raised"  # the site was notified
CRITICAL_COMMUNICATED: Final = "critical.communicated"  # the reader recorded who was told
CRITICAL_ACKNOWLEDGED: Final = "critical.acknowledged"
CRITICAL_ESCALATED: Final = "critical.escalated"  # no acknowledgement in time: duty officer alerted

DELIVERY_QUEUED: Final = "delivery.queued"
DELIVERY_ATTEMPT_FAILED: Final = "delivery.attempt_failed"
DELIVERY_DELIVERED: Final = "delivery.delivered"
DELIVERY_ACKNOWLEDGED: Final = "delivery.acknowledged"  # a site that pulls its reports confirmed one

READER_ADDED: Final = "reader.added"
ROSTER_CHANGED: Final = "roster.changed"
ROUTING_RULE_ADDED: Final = "routing_rule.added"
ROUTING_RULE_CHANGED: Final = "routing_rule.changed"  # enabled or disabled
READER_CHANGED: Final = "reader.changed"  # tier, credentials or active
SLA_CHANGED: Final = "sla.changed"
READING_GROUP_CHANGED: Final = "reading_group.changed"
READING_REQUESTED: Final = "reading.requested"  # a site asked for a priority or a second opinion

# Peer review (RADPEER, reading/qa/peer.py): every state change of a ``peer_review`` row; the
# discrepancy rates are folded from these events (reading/qa/peer_log.py).
PEER_SAMPLED: Final = "peer.sampled"  # a signed report was drawn for review
PEER_ASSIGNED: Final = "peer.assigned"  # given, blinded, to a reviewer
PEER_UNASSIGNED: Final = "peer.unassigned"  # no eligible reviewer (the reason is in the payload)
PEER_SCORED: Final = "peer.scored"  # the reviewer's RADPEER score and comment
PEER_QA_OPENED: Final = "peer.qa_opened"  # a 3b score entered the QA review queue
PEER_QA_CLOSED: Final = "peer.qa_closed"  # QA closed the case with an outcome

# Reading's administrative changes are access-audit records too (pacs.events.ADMINISTRATIVE).
administrative(
    READER_ADDED,
    READER_CHANGED,
    ROSTER_CHANGED,
    ROUTING_RULE_ADDED,
    ROUTING_RULE_CHANGED,
    SLA_CHANGED,
    READING_GROUP_CHANGED,
)
