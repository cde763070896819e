"""The Query/Retrieve SCPs (PS3.4 C): C-FIND, C-MOVE and C-GET on the Patient Root and Study
Root information models, served by the receiver's association and scoped by its caller.

Handlers follow pynetdicom's generator protocol: C-FIND yields (status, answer) pairs; C-MOVE
yields the destination, then the number of sub-operations, then (status, instance) pairs;
C-GET the number, then the pairs. pynetdicom sends each yielded ``StoredInstance`` through
``RetrieveAssociation.send_c_store`` (the stored bytes), counts the sub-operations and sends
the final status (0xB000 when some failed). Out-of-scope studies are never found, so a C-MOVE
of one moves nothing — the same answer as for a UID that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final, cast

import structlog
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import evt
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.presentation import PresentationContext, build_context
from pynetdicom.sop_class import (  # type: ignore[attr-defined]
    PatientRootQueryRetrieveInformationModelFind,
    PatientRootQueryRetrieveInformationModelGet,
    PatientRootQueryRetrieveInformationModelMove,
    StudyRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelGet,
    StudyRootQueryRetrieveInformationModelMove,
    Verification,
)
from sqlalchemy.orm import Session, sessionmaker

from pacs.audit import record_access
from pacs.dimse.find import Model, answer, parse_find, parse_retrieve
from pacs.dimse.selection import Selected, count_instances, paged, selected_instances, stored_syntaxes
from pacs.dimse.statuses import NOT_AUTHORISED, OUT_OF_RESOURCES, status_dataset
from pacs.dimse.store_scp import StoreSCP
from pacs.dimse.store_scu import UNCOMPRESSED, ObjectSource, StoredInstance
from pacs.identity.nodes import Caller, move_destination
from pacs.identity.users import Scope
from pacs.index.db import IndexUnavailable, transaction
from pacs.query import Attribute, QueryError, matching_statement
from pacs.settings import Settings

log = structlog.get_logger(__name__)

PENDING: Final = 0xFF00
CANCEL: Final = 0xFE00
IDENTIFIER_DOES_NOT_MATCH: Final = 0xA900  # PS3.4 C.4.1.1.4 / C.4.2.1.5 / C.4.3.1.4
MAX_CONTEXTS: Final = 128  # PS3.8 9.3.2.2: presentation context IDs are odd numbers 1–255
WARNINGS: Final = {0xB000, 0xB006, 0xB007}  # PS3.4 B.2.3: the instance was stored, with a warning

FIND_MODELS: Final[dict[str, Model]] = {
    PatientRootQueryRetrieveInformationModelFind: "patient",
    StudyRootQueryRetrieveInformationModelFind: "study",
}
MOVE_MODELS: Final[dict[str, Model]] = {
    PatientRootQueryRetrieveInformationModelMove: "patient",
    StudyRootQueryRetrieveInformationModelMove: "study",
}
GET_MODELS: Final[dict[str, Model]] = {
    PatientRootQueryRetrieveInformationModelGet: "patient",
    StudyRootQueryRetrieveInformationModelGet: "study",
}

Response = tuple[int | Dataset, Dataset | None]


@dataclass
class StudyTally:
    site_id: int
    patient_id: str | None
    completed: int = 0
    warning: int = 0
    failed: int = 0


@dataclass
class RetrieveTally:
    """Sub-operation results per study, for one access record per study moved."""

    studies: dict[str, StudyTally] = field(default_factory=dict)
    by_instance: dict[str, str] = field(default_factory=dict)  # SOP instance UID → study UID

    def expect(self, selected: Selected) -> None:
        self.studies.setdefault(selected.study_uid, StudyTally(selected.site_id, selected.patient_id))
        self.by_instance[selected.sop_instance_uid] = selected.study_uid

    def record(self, instance: StoredInstance, status: int | None) -> None:
        tally = self.studies[self.by_instance[str(instance.SOPInstanceUID)]]
        if status == 0x0000:
            tally.completed += 1
        elif status in WARNINGS:
            tally.warning += 1
        else:
            tally.failed += 1


def intersect(first: Scope, second: Scope) -> Scope:
    if first.site_ids is None:
        return second
    if second.site_ids is None:
        return first
    return Scope(first.site_ids & second.site_ids)


def destination_contexts(pairs: set[tuple[str, str]]) -> list[PresentationContext]:
    """Each SOP class in each stored syntax (sent byte for byte when accepted), plus the
    uncompressed syntaxes for classes stored uncompressed (re-encoded when only those are)."""
    contexts = [build_context(sop_class, [syntax]) for sop_class, syntax in sorted(pairs)]
    convertible = sorted({sop_class for sop_class, syntax in pairs if syntax in UNCOMPRESSED})
    contexts += [build_context(c, [ExplicitVRLittleEndian, ImplicitVRLittleEndian]) for c in convertible]
    if len(contexts) > MAX_CONTEXTS:
        log.warning("retrieve.too_many_contexts", proposed=len(contexts), limit=MAX_CONTEXTS)
    return contexts[:MAX_CONTEXTS] or [build_context(Verification)]


class QueryRetrieveSCP:
    """Binds to the receiver's server beside ``StoreSCP``, which admitted the association and
    knows its caller."""

    def __init__(
        self, settings: Settings, sessions: sessionmaker[Session], source: ObjectSource, admission: StoreSCP
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.source = source
        self.admission = admission

    def handlers(self) -> list[tuple[Any, Any]]:
        return [(evt.EVT_C_FIND, self.on_c_find), (evt.EVT_C_MOVE, self.on_c_move), (evt.EVT_C_GET, self.on_c_get)]

    # ------------------------------------------------------------ C-FIND

    def on_c_find(self, event: evt.Event) -> Iterator[Response]:
        caller = self.admission.caller_of(event.assoc)
        if caller is None or not caller.may_query:
            yield status_dataset(NOT_AUTHORISED, "this AE may not query"), None
            return
        model = FIND_MODELS[str(cast(C_FIND, event.request).AffectedSOPClassUID)]
        try:
            charset = caller.site.assumed_charset if caller.site is not None else None
            request = parse_find(event.identifier, model, assumed_charset=charset)
        except QueryError as exc:
            yield status_dataset(IDENTIFIER_DOES_NOT_MATCH, str(exc)), None
            return
        matching = matching_statement(request.level, request.matches, caller.scope)
        keywords = [a.keyword for a in matching.attributes]
        answered, studies, outcome = 0, set[str](), "success"
        try:
            for row in paged(self.sessions, matching):
                if event.is_cancelled:
                    outcome = "cancelled"
                    yield CANCEL, None
                    return
                values = dict(zip(keywords, row[2 : 2 + len(keywords)], strict=True))
                patient_studies = int(row[2 + len(keywords)]) if request.level == "patient" else None
                yield PENDING, answer(request, values, ae_title=self.settings.ae_title, patient_studies=patient_studies)
                answered += 1
                if values.get("StudyInstanceUID"):
                    studies.add(str(values["StudyInstanceUID"]))
        except IndexUnavailable:
            outcome = "error"
            yield status_dataset(OUT_OF_RESOURCES, "index unavailable; retry shortly"), None
        finally:
            record_access(
                self.sessions,
                caller.principal,
                "search",
                outcome=outcome,
                source=caller.address,
                service="C-FIND",
                model=model,
                level=request.qr_level,
                query={a.keyword: v for a, v in request.matches},
                answered=answered,
                studies=sorted(studies)[:100],
            )

    # ------------------------------------------------------------ C-MOVE and C-GET

    def on_c_move(self, event: evt.Event) -> Iterator[Any]:
        caller = self.admission.caller_of(event.assoc)
        allow_list = self.admission.allow_list()
        destination = move_destination(allow_list.nodes, str(event.move_destination)) if allow_list else None
        if caller is None or destination is None:
            log.warning("retrieve.unknown_destination", destination=str(event.move_destination))
            yield None, None  # pynetdicom answers 0xA801: move destination unknown
            return
        address = (destination.host, destination.port)
        refusal, matches = self._selection(event, caller, MOVE_MODELS)
        if refusal is not None:
            # pynetdicom reports a failure only after the destination and one sub-operation.
            yield (*address, {"contexts": [build_context(Verification)]})
            yield 1
            yield refusal, None
            return
        scope = intersect(caller.scope, destination.scope)
        try:
            with transaction(self.sessions) as session:
                total = count_instances(session, matches, scope)
                pairs = stored_syntaxes(session, matches, scope)
        except IndexUnavailable:
            yield (*address, {"contexts": [build_context(Verification)]})
            yield 1
            yield status_dataset(OUT_OF_RESOURCES, "index unavailable; retry shortly"), None
            return
        contexts = destination_contexts(pairs)
        yield (*address, {"contexts": contexts, "max_pdu": self.settings.max_pdu})
        yield total
        yield from self._sub_operations(event, caller, "C-MOVE", destination.ae_title, matches, scope, total)

    def on_c_get(self, event: evt.Event) -> Iterator[Any]:
        caller = self.admission.caller_of(event.assoc)
        if caller is None:
            yield 1
            yield status_dataset(NOT_AUTHORISED, "association not admitted"), None
            return
        refusal, matches = self._selection(event, caller, GET_MODELS)
        if refusal is not None:
            yield 1
            yield refusal, None
            return
        try:
            with transaction(self.sessions) as session:
                total = count_instances(session, matches, caller.scope)
        except IndexUnavailable:
            yield 1
            yield status_dataset(OUT_OF_RESOURCES, "index unavailable; retry shortly"), None
            return
        yield total
        yield from self._sub_operations(event, caller, "C-GET", caller.ae_title, matches, caller.scope, total)

    def _selection(
        self, event: evt.Event, caller: Caller, models: dict[str, Model]
    ) -> tuple[Dataset | None, tuple[tuple[Attribute, str], ...]]:
        """(refusal status, matches): a refusal when the caller may not retrieve or the
        identifier names no level or not the level's unique key."""
        if not caller.may_retrieve:
            return status_dataset(NOT_AUTHORISED, "this AE may not retrieve"), ()
        model = models[str(event.request.AffectedSOPClassUID)]
        try:
            _, matches = parse_retrieve(event.identifier, model)
        except QueryError as exc:
            return status_dataset(IDENTIFIER_DOES_NOT_MATCH, str(exc)), ()
        return None, matches

    def _sub_operations(
        self,
        event: evt.Event,
        caller: Caller,
        service: str,
        destination: str,
        matches: tuple[tuple[Attribute, str], ...],
        scope: Scope,
        total: int,
    ) -> Iterator[Response]:
        """The instances as pending sub-operations, at most ``total`` (pynetdicom stops reading
        after as many as it was told), then one access record per study."""
        tally = RetrieveTally()
        yielded, outcome = 0, "success"
        try:
            for selected in selected_instances(self.sessions, matches, scope):
                if yielded >= total:
                    break
                if event.is_cancelled:
                    outcome = "cancelled"
                    yield CANCEL, None
                    return
                tally.expect(selected)
                yield PENDING, self._stored_instance(selected, tally)
                yielded += 1
        except IndexUnavailable:
            outcome = "error"
            yield status_dataset(OUT_OF_RESOURCES, "index unavailable; retry shortly"), None
        finally:
            self._audit(caller, service, destination, tally, outcome)

    def _stored_instance(self, selected: Selected, tally: RetrieveTally) -> StoredInstance:
        return StoredInstance(
            sop_class_uid=selected.sop_class_uid,
            sop_instance_uid=selected.sop_instance_uid,
            transfer_syntax_uid=selected.transfer_syntax_uid,
            object_key=selected.object_key,
            dataset_offset=selected.dataset_offset,
            source=self.source,
            on_result=tally.record,
        )

    def _audit(self, caller: Caller, service: str, destination: str, tally: RetrieveTally, outcome: str) -> None:
        for study_uid, study in tally.studies.items():
            record_access(
                self.sessions,
                caller.principal,
                "retrieve",
                outcome=outcome if outcome != "success" or not study.failed else "error",
                study_uid=study_uid,
                patient_id=study.patient_id,
                site_id=study.site_id,
                source=caller.address,
                service=service,
                destination=destination,
                completed=study.completed,
                warning=study.warning,
                failed=study.failed,
            )
        log.info(
            "retrieve.done",
            service=service,
            calling_ae=caller.ae_title,
            destination=destination,
            studies=len(tally.studies),
            outcome=outcome,
        )
