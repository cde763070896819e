"""pacs/dimse/quick.py: the File Meta and the C-STORE response encoded by hand must be the bytes
pynetdicom and pydicom write, and anything unusual must still go through their code."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.filewriter import write_file_meta_info as pydicom_write_file_meta_info
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGLSLossless, RLELossless
from pynetdicom import AE, PYNETDICOM_IMPLEMENTATION_UID
from pynetdicom.dimse import DIMSEServiceProvider
from pynetdicom.dimse_messages import C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import create_file_meta as pynetdicom_create_file_meta
from pynetdicom.dsutils import encode
from sqlalchemy import select

from pacs.dimse import quick
from pacs.index.db import transaction
from pacs.index.models import Instance
from tests.pacs.helpers import small_ct

CT = "1.2.840.10008.5.1.4.1.1.2"
DX = "1.2.840.10008.5.1.4.1.1.1.1"  # odd length
INSTANCES = ["1.2.3", "1.2.34", "1.2.826.0.1.3680043.8.498." + "1" * 38]  # odd, even, 64 characters
# Not valid UIDs, but ASCII: pydicom writes them as they are (a warning at most), and so must we;
# ingest refuses the data set afterwards (pacs/part10.py), with its own status.
INVALID = ["1.2." + "3" * 70, "1.2.abc", "01.2.3"]


def pydicom_meta(sop_class: str, sop_instance: str, syntax: str) -> bytes:
    out = io.BytesIO()
    meta = pynetdicom_create_file_meta(sop_class_uid=sop_class, sop_instance_uid=sop_instance, transfer_syntax=syntax)
    pydicom_write_file_meta_info(out, meta)  # type: ignore[arg-type]
    return out.getvalue()


def quick_meta(sop_class: str, sop_instance: str, syntax: str) -> bytes:
    out = io.BytesIO()
    meta = quick.create_file_meta(sop_class_uid=sop_class, sop_instance_uid=sop_instance, transfer_syntax=syntax)
    quick.write_file_meta_info(out, meta)
    return out.getvalue()


@pytest.mark.parametrize("sop_class", [CT, DX])
@pytest.mark.parametrize("sop_instance", [*INSTANCES, *INVALID])
@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, ExplicitVRLittleEndian, JPEGLSLossless, RLELossless])
def test_file_meta_is_the_bytes_pydicom_writes(sop_class: str, sop_instance: str, syntax: str) -> None:
    assert quick_meta(sop_class, sop_instance, syntax) == pydicom_meta(sop_class, sop_instance, syntax)


def test_an_unusual_uid_goes_through_pydicom_and_its_checks() -> None:
    odd = "1.2.3.ä"
    assert not isinstance(
        quick.create_file_meta(sop_class_uid=CT, sop_instance_uid=odd, transfer_syntax=ExplicitVRLittleEndian),
        quick.PlainFileMeta,
    )
    assert quick_meta(CT, odd, ExplicitVRLittleEndian) == pydicom_meta(CT, odd, ExplicitVRLittleEndian)
    with pytest.raises(Exception) as ours:  # whatever pydicom raises, the same
        quick_meta(CT, "", ExplicitVRLittleEndian)
    with pytest.raises(Exception) as theirs:
        pydicom_meta(CT, "", ExplicitVRLittleEndian)
    assert (type(ours.value), str(ours.value)) == (type(theirs.value), str(theirs.value))


def response(status: int, sop_class: str | None, sop_instance: str | None, **extra: object) -> C_STORE:
    primitive = C_STORE()
    primitive.MessageIDBeingRespondedTo = 7
    primitive.AffectedSOPClassUID = sop_class
    primitive.AffectedSOPInstanceUID = sop_instance
    primitive.Status = status
    for name, value in extra.items():
        setattr(primitive, name, value)
    return primitive


def pynetdicom_response(primitive: C_STORE) -> bytes:
    message = C_STORE_RSP()
    message.primitive_to_message(primitive)
    return bytes(encode(message.command_set, True, True))  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [0x0000, 0xA700, 0xC000, 0xB000, 0xFFFF])
@pytest.mark.parametrize("sop_class", [CT, DX, None])
@pytest.mark.parametrize("sop_instance", [*INSTANCES, *INVALID[1:], None])  # a primitive refuses > 64
def test_a_plain_store_response_is_the_bytes_pynetdicom_encodes(
    status: int, sop_class: str | None, sop_instance: str | None
) -> None:
    primitive = response(status, sop_class, sop_instance)
    assert quick.store_response_bytes(primitive) == pynetdicom_response(primitive)


@pytest.mark.parametrize("extra", [{"ErrorComment": "cannot parse the data set"}, {"OffendingElement": [0x00100010]}])
def test_a_response_with_more_is_left_to_pynetdicom(extra: dict[str, object]) -> None:
    assert quick.store_response_bytes(response(0xC000, CT, INSTANCES[0], **extra)) is None


def test_a_stored_object_carries_the_file_meta_and_the_sender_its_responses(start_receiver, monkeypatch) -> None:
    """Through a running receiver: the stored object's group 0002 is what pydicom would have
    written, and a pynetdicom sender gets each response: the plain ones encoded by hand, the
    refused one's, with its Error Comment, by pynetdicom."""
    by_pynetdicom: list[int] = []
    send_msg = DIMSEServiceProvider.send_msg

    def counted(self: DIMSEServiceProvider, primitive: C_STORE, context_id: int) -> None:
        if primitive.MessageIDBeingRespondedTo is not None:  # a response (the sender's requests pass here too)
            by_pynetdicom.append(primitive.Status)
        send_msg(self, primitive, context_id)

    monkeypatch.setattr(DIMSEServiceProvider, "send_msg", counted)
    fixture = start_receiver()
    good = [small_ct(seed=31), small_ct(seed=32)]
    broken = small_ct(seed=33)
    broken.SeriesInstanceUID = "not.a.uid"  # refused (invalid UID), answered with an Error Comment
    ae = AE(ae_title="FUDONG_CT")
    ae.add_requested_context(CT, [ExplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", fixture.port, ae_title="YUNYING")
    assert assoc.is_established
    try:
        statuses = [assoc.send_c_store(ds) for ds in [*good, broken]]
    finally:
        assoc.release()
    assert [int(status.Status) for status in statuses] == [0x0000, 0x0000, 0xC002]
    assert str(statuses[2].ErrorComment).startswith("not a valid DICOM UID")
    assert by_pynetdicom == [0xC002]

    with transaction(fixture.services.sessions) as session:
        keys = {uid: key for uid, key in session.execute(select(Instance.sop_instance_uid, Instance.object_key))}
    for ds in good:
        data = fixture.services.store.get(keys[ds.SOPInstanceUID])
        meta = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).file_meta
        assert meta.MediaStorageSOPClassUID == CT
        assert meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert meta.TransferSyntaxUID == ExplicitVRLittleEndian
        assert meta.ImplementationClassUID == PYNETDICOM_IMPLEMENTATION_UID
        expected = pydicom_meta(CT, ds.SOPInstanceUID, ExplicitVRLittleEndian)
        assert data[:128] == bytes(128) and data[128:132] == b"DICM"
        assert data[132 : 132 + len(expected)] == expected
