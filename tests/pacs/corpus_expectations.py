"""What the receiver must do with each file of the real-world conformance corpus.

Worked out by reading each file (its file meta, its data set's encoding, its UIDs, the framing
of every element) against the policy in docs/conformance.md, section 10 — never by recording
what the receiver answered. Keys are ``<source>/<path>``:

* ``data/``          every ``.dcm`` of pydicom-data (``data_store/data``);
* ``test_files/``    every ``.dcm`` of pydicom's own ``pydicom/data/test_files``;
* ``charset_files/`` every ``.dcm`` of ``pydicom/data/charset_files``;
* ``dicomdirtests/`` every DICOM file of ``test_files/dicomdirtests`` except the TINY_ALPHA
  images after the first (51 identical-looking tiny CTs).

A key ending in ``#command-uid-from-meta`` sends that file again with the C-STORE request's
Affected SOP Instance UID taken from the file meta instead of the data set (what
pynetdicom's ``STORE_SEND_CHUNKED_DATASET`` mode does).

Values, one of:

* ``"stored"``: Success (0x0000); the stored object's data set is byte-identical to the one
  sent, in the transfer syntax it was sent in;
* ``"refused-at-negotiation: 0x03 <why>"``: the presentation context is rejected with result
  0x03 (abstract syntax not supported), or ``0x04`` (transfer syntaxes not supported); no
  C-STORE can be sent;
* ``"failure 0xCxxx: <why>"`` / ``"failure 0xA900: <why>"``: the C-STORE is answered with that
  status, the object is quarantined, nothing is indexed.
"""

from __future__ import annotations

from typing import Final

STORED: Final = "stored"
_RETIRED_US = (
    "refused-at-negotiation: 0x03 SOP Class 1.2.840.10008.5.1.4.1.1.6 is the Ultrasound Image Storage "
    "retired in 1996, not among pynetdicom's storage SOP classes"
)
_DICOMDIR = (
    "refused-at-negotiation: 0x03 a DICOMDIR: its data set has no SOP Class UID and its file meta names "
    "Media Storage Directory Storage (1.2.840.10008.1.3.10), a media-only class with no network storage"
)
_NO_SOP_CLASS = (
    "failure 0xC001: the data set has no SOP Class UID (0008,0016), SOP Instance UID, Study or Series "
    "Instance UID (a fragment for a parser test, sent by a careless router)"
)
_NO_STUDY_SERIES = (
    "failure 0xC001: Study Instance UID (0020,000D) and Series Instance UID (0020,000E) are absent "
    "(Type 1 in every image IOD)"
)

EXPECTED: Final[dict[str, str]] = {
    # ------------------------------------------------------------------ pydicom-data
    # CT / MR / CR / US / SC in Explicit VR Little Endian, Big Endian, RLE, JPEG, JPEG 2000, JPEG-LS.
    "data/693_J2KR.dcm": STORED,
    "data/693_UNCI.dcm": STORED,
    "data/693_UNCR.dcm": STORED,
    "data/JPEG-LL.dcm": STORED,  # JPEG Lossless SV1
    "data/JPEG2000_UNC.dcm": STORED,
    "data/JPGLosslessP14SV1_1s_1f_8b.dcm": STORED,
    "data/MR-SIEMENS-DICOM-WithOverlays.dcm": STORED,
    "data/MR2_J2KI.dcm": STORED,  # JPEG 2000 (lossy)
    "data/MR2_J2KR.dcm": STORED,
    "data/MR2_UNCI.dcm": STORED,
    "data/MR2_UNCR.dcm": STORED,
    "data/OBXXXX1A.dcm": STORED,
    "data/OBXXXX1A_2frame.dcm": STORED,
    "data/OBXXXX1A_expb.dcm": STORED,  # Explicit VR Big Endian
    "data/OBXXXX1A_expb_2frame.dcm": STORED,
    "data/OBXXXX1A_rle.dcm": STORED,
    "data/OBXXXX1A_rle_2frame.dcm": STORED,
    "data/OT-PAL-8-face.dcm": STORED,  # no file meta: Implicit VR LE data set, palette colour
    "data/RG1_J2KI.dcm": STORED,  # CR, 7 MB uncompressed siblings below
    "data/RG1_J2KR.dcm": STORED,
    "data/RG1_UNCI.dcm": STORED,
    "data/RG1_UNCR.dcm": STORED,
    "data/RG3_J2KI.dcm": STORED,
    "data/RG3_J2KR.dcm": STORED,
    "data/RG3_UNCI.dcm": STORED,
    "data/RG3_UNCR.dcm": STORED,
    "data/SC_rgb.dcm": STORED,
    "data/SC_rgb_16bit.dcm": STORED,
    "data/SC_rgb_16bit_2frame.dcm": STORED,
    "data/SC_rgb_2frame.dcm": STORED,
    "data/SC_rgb_32bit.dcm": STORED,
    "data/SC_rgb_32bit_2frame.dcm": STORED,
    "data/SC_rgb_dcmtk_ebcr_dcmd.dcm": STORED,
    "data/SC_rgb_dcmtk_ebcyn1_dcmd.dcm": STORED,
    "data/SC_rgb_dcmtk_ebcyn2_dcmd.dcm": STORED,
    "data/SC_rgb_dcmtk_ebcynp_dcmd.dcm": STORED,
    "data/SC_rgb_dcmtk_ebcys2_dcmd.dcm": STORED,
    "data/SC_rgb_dcmtk_ebcys4_dcmd.dcm": STORED,
    "data/SC_rgb_expb.dcm": STORED,
    "data/SC_rgb_expb_16bit.dcm": STORED,
    "data/SC_rgb_expb_16bit_2frame.dcm": STORED,
    "data/SC_rgb_expb_2frame.dcm": STORED,
    "data/SC_rgb_expb_32bit.dcm": STORED,
    "data/SC_rgb_expb_32bit_2frame.dcm": STORED,
    "data/SC_rgb_gdcm2k_uncompressed.dcm": STORED,
    "data/SC_ybr_full_uncompressed.dcm": STORED,
    "data/US1_J2KI.dcm": STORED,
    "data/US1_J2KR.dcm": STORED,
    "data/US1_UNCI.dcm": STORED,
    "data/US1_UNCR.dcm": STORED,
    "data/bad_sequence.dcm": (
        "failure 0xC002: SOP Instance, Study and Series Instance UIDs are 64-character hex digests "
        "('dccc9599…'), not UIDs (PS3.5 9.1: digits and dots only)"
    ),
    "data/color-pl.dcm": _RETIRED_US,
    "data/color-px.dcm": _RETIRED_US,
    "data/color3d_jpeg_baseline.dcm": STORED,  # 6 MB multi-frame US, JPEG Baseline: several PDUs
    "data/eCT_Supplemental.dcm": STORED,  # Enhanced CT
    "data/emri_small.dcm": STORED,  # Enhanced MR
    "data/emri_small_RLE.dcm": STORED,
    "data/emri_small_big_endian.dcm": STORED,
    "data/emri_small_jpeg_2k_lossless.dcm": STORED,
    "data/emri_small_jpeg_2k_lossless_too_short.dcm": (
        "failure 0xC003: encapsulated Pixel Data (undefined length) ends without its Sequence Delimitation "
        "Item (FFFE,E0DD): the last 8 bytes of the file are missing (PS3.5 A.4)"
    ),
    "data/emri_small_jpeg_ls_lossless.dcm": STORED,
    "data/explicit_VR-UN.dcm": STORED,  # elements with VR UN of undefined length
    "data/gdcm-US-ALOKA-16.dcm": STORED,  # Implicit VR Little Endian
    "data/gdcm-US-ALOKA-16_big.dcm": STORED,
    "data/liver.dcm": STORED,  # Segmentation, 1-bit pixels
    "data/liver_expb.dcm": STORED,
    "data/mlut_18.dcm": STORED,
    "data/vlut_04.dcm": STORED,
    # ------------------------------------------------------------------ pydicom test_files
    "test_files/693_J2KI.dcm": STORED,
    "test_files/CT_small.dcm": STORED,
    "test_files/ExplVR_BigEnd.dcm": STORED,
    "test_files/ExplVR_BigEndNoMeta.dcm": STORED,  # no file meta: sent as Explicit VR Big Endian
    "test_files/ExplVR_LitEndNoMeta.dcm": STORED,  # no file meta: sent as Explicit VR Little Endian
    "test_files/GDCMJ2K_TextGBR.dcm": STORED,  # JP2 header inside the codestream: not decoded, stored
    "test_files/J2K_pixelrep_mismatch.dcm": STORED,
    "test_files/JPEG-lossy.dcm": STORED,  # JPEG Extended (process 2 & 4)
    "test_files/JPEG2000-embedded-sequence-delimiter.dcm": STORED,  # FFFE,E0DD bytes inside a fragment
    "test_files/JPEG2000.dcm": STORED,
    "test_files/JPEGLSNearLossless_08.dcm": _NO_STUDY_SERIES,
    "test_files/JPEGLSNearLossless_16.dcm": _NO_STUDY_SERIES,
    "test_files/JPGExtended.dcm": STORED,
    "test_files/MR_small.dcm": STORED,
    "test_files/MR_small_RLE.dcm": STORED,
    "test_files/MR_small_bigendian.dcm": STORED,
    "test_files/MR_small_expb.dcm": STORED,
    "test_files/MR_small_implicit.dcm": STORED,
    "test_files/MR_small_jp2klossless.dcm": STORED,
    "test_files/MR_small_jpeg_ls_lossless.dcm": STORED,
    "test_files/MR_small_padded.dcm": STORED,  # Pixel Data 128 bytes longer than needed: tolerated
    "test_files/MR_truncated.dcm": "failure 0xC003: Pixel Data declares 8192 bytes, only 8130 follow",
    "test_files/SC_jpeg_no_color_transform.dcm": STORED,
    "test_files/SC_jpeg_no_color_transform_2.dcm": STORED,
    "test_files/SC_rgb_dcmtk_+eb+cr.dcm": STORED,
    "test_files/SC_rgb_dcmtk_+eb+cy+n1.dcm": STORED,
    "test_files/SC_rgb_dcmtk_+eb+cy+n2.dcm": STORED,
    "test_files/SC_rgb_dcmtk_+eb+cy+np.dcm": STORED,
    "test_files/SC_rgb_dcmtk_+eb+cy+s2.dcm": STORED,
    "test_files/SC_rgb_dcmtk_+eb+cy+s4.dcm": STORED,
    "test_files/SC_rgb_gdcm_KY.dcm": STORED,
    "test_files/SC_rgb_jls_lossy_line.dcm": _NO_STUDY_SERIES,
    "test_files/SC_rgb_jls_lossy_sample.dcm": _NO_STUDY_SERIES,
    "test_files/SC_rgb_jpeg.dcm": (
        "failure 0xC000: the file meta says JPEG Baseline (Explicit VR Little Endian) but the whole data set "
        "is encoded Implicit VR: its first element (0008,0008) carries no VR"
    ),
    "test_files/SC_rgb_jpeg_app14_dcmd.dcm": STORED,
    "test_files/SC_rgb_jpeg_dcmd.dcm": STORED,
    "test_files/SC_rgb_jpeg_dcmtk.dcm": STORED,
    "test_files/SC_rgb_jpeg_gdcm.dcm": STORED,
    "test_files/SC_rgb_jpeg_lossy_gdcm.dcm": STORED,
    "test_files/SC_rgb_rle.dcm": STORED,
    "test_files/SC_rgb_rle_16bit.dcm": STORED,
    "test_files/SC_rgb_rle_16bit_2frame.dcm": STORED,
    "test_files/SC_rgb_rle_2frame.dcm": STORED,
    "test_files/SC_rgb_rle_32bit.dcm": STORED,
    "test_files/SC_rgb_rle_32bit_2frame.dcm": STORED,
    "test_files/SC_rgb_small_odd.dcm": STORED,  # 27 bytes of pixels padded to 28
    "test_files/SC_rgb_small_odd_big_endian.dcm": STORED,
    "test_files/SC_rgb_small_odd_jpeg.dcm": STORED,
    "test_files/SC_ybr_full_422_uncompressed.dcm": (
        "stored: native YBR_FULL_422 holds 2 bytes per pixel, not 3 (PS3.3 C.7.6.3.1.2): 100×100 → "
        "20000 bytes, exactly what the file has"
    ),
    "test_files/UN_sequence.dcm": _NO_SOP_CLASS,
    "test_files/badVR.dcm": STORED,  # Number of Frames '1A' (bad IS): size check not possible, stored
    "test_files/empty_charset_LEI.dcm": _NO_SOP_CLASS,
    "test_files/examples_jpeg2k.dcm": STORED,
    "test_files/examples_overlay.dcm": STORED,
    "test_files/examples_palette.dcm": STORED,
    "test_files/examples_rgb_color.dcm": STORED,
    "test_files/examples_ybr_color.dcm": STORED,
    "test_files/image_dfl.dcm": (
        "refused-at-negotiation: 0x04 Deflated Explicit VR Little Endian is refused on purpose "
        "(a small deflated data set can inflate a thousandfold in the receiver's memory)"
    ),
    "test_files/liver_1frame.dcm": STORED,
    "test_files/liver_expb_1frame.dcm": STORED,
    "test_files/meta_missing_tsyntax.dcm": _NO_SOP_CLASS,  # and no Transfer Syntax UID in its meta
    "test_files/nested_priv_SQ.dcm": _NO_SOP_CLASS,
    "test_files/no_meta.dcm": (
        "failure 0xC000: a stray byte precedes the data set (CT_small without its meta, shifted by one): "
        "read as Implicit VR, its first element (0820,0500) declares 173228800 bytes and 38863 follow"
    ),
    "test_files/no_meta_group_length.dcm": _NO_SOP_CLASS,
    "test_files/priv_SQ.dcm": _NO_SOP_CLASS,
    "test_files/reportsi.dcm": STORED,  # Basic Text SR
    "test_files/reportsi_with_empty_number_tags.dcm": STORED,
    "test_files/rtdose.dcm": STORED,
    "test_files/rtdose_1frame.dcm": STORED,
    "test_files/rtdose_expb.dcm": STORED,
    "test_files/rtdose_expb_1frame.dcm": STORED,
    "test_files/rtdose_rle.dcm": STORED,
    "test_files/rtdose_rle_1frame.dcm": STORED,
    "test_files/rtplan.dcm": STORED,  # meta and data set SOP Instance UIDs differ: the data set's is sent
    "test_files/rtplan.dcm#command-uid-from-meta": (
        "failure 0xA900: the C-STORE request names SOP Instance 1.2.999.999.99.9.9999.9999.20030903150023 "
        "(the file meta's), the data set holds 1.2.777.777.77.7.7777.7777.20030903150023"
    ),
    "test_files/rtplan_truncated.dcm": (
        "failure 0xC000: the data set is cut off outside Pixel Data: Beam Sequence (300A,00B0) declares 976 "
        "bytes, only 711 follow"
    ),
    "test_files/rtstruct.dcm": STORED,  # no file meta: Implicit VR Little Endian
    "test_files/test-SR.dcm": STORED,  # Comprehensive SR
    "test_files/waveform_ecg.dcm": STORED,  # 12-lead ECG Waveform Storage
    # ------------------------------------------------------------------ pydicom charset_files
    "charset_files/chrArab.dcm": STORED,
    "charset_files/chrFren.dcm": STORED,
    "charset_files/chrFrenMulti.dcm": STORED,
    "charset_files/chrGerm.dcm": STORED,
    "charset_files/chrGreek.dcm": STORED,
    "charset_files/chrH31.dcm": STORED,
    "charset_files/chrH32.dcm": STORED,
    "charset_files/chrHbrw.dcm": STORED,
    "charset_files/chrI2.dcm": STORED,
    "charset_files/chrJapMulti.dcm": STORED,
    "charset_files/chrJapMultiExplicitIR6.dcm": STORED,
    "charset_files/chrKoreanMulti.dcm": STORED,
    "charset_files/chrRuss.dcm": STORED,
    "charset_files/chrSQEncoding.dcm": _NO_SOP_CLASS,
    "charset_files/chrSQEncoding1.dcm": _NO_SOP_CLASS,
    "charset_files/chrX1.dcm": STORED,  # ISO_IR 192 (UTF-8)
    "charset_files/chrX2.dcm": STORED,  # GB18030
    # ------------------------------------------------------------------ pydicom dicomdirtests
    "dicomdirtests/77654033/CR1/6154": STORED,
    "dicomdirtests/77654033/CR2/6247": STORED,
    "dicomdirtests/77654033/CR3/6278": STORED,
    "dicomdirtests/77654033/CT2/17106": STORED,
    "dicomdirtests/77654033/CT2/17136": STORED,
    "dicomdirtests/77654033/CT2/17166": STORED,
    "dicomdirtests/77654033/CT2/17196": STORED,
    "dicomdirtests/98892001/CT2N/6293": STORED,
    "dicomdirtests/98892001/CT2N/6924": STORED,
    "dicomdirtests/98892001/CT5N/2062": STORED,
    "dicomdirtests/98892001/CT5N/2392": STORED,
    "dicomdirtests/98892001/CT5N/2693": STORED,
    "dicomdirtests/98892001/CT5N/3023": STORED,
    "dicomdirtests/98892001/CT5N/3353": STORED,
    "dicomdirtests/98892003/MR1/15820": STORED,
    "dicomdirtests/98892003/MR1/4919": STORED,
    "dicomdirtests/98892003/MR1/5641": STORED,
    "dicomdirtests/98892003/MR2/15970": STORED,
    "dicomdirtests/98892003/MR2/4950": STORED,
    "dicomdirtests/98892003/MR2/4981": STORED,
    "dicomdirtests/98892003/MR2/5011": STORED,
    "dicomdirtests/98892003/MR2/6273": STORED,
    "dicomdirtests/98892003/MR2/6605": STORED,
    "dicomdirtests/98892003/MR2/6935": STORED,
    "dicomdirtests/98892003/MR700/4467": STORED,
    "dicomdirtests/98892003/MR700/4528": STORED,
    "dicomdirtests/98892003/MR700/4558": STORED,
    "dicomdirtests/98892003/MR700/4588": STORED,
    "dicomdirtests/98892003/MR700/4618": STORED,
    "dicomdirtests/98892003/MR700/4648": STORED,
    "dicomdirtests/98892003/MR700/4678": STORED,
    "dicomdirtests/DICOMDIR": _DICOMDIR,
    "dicomdirtests/DICOMDIR-bigEnd": _DICOMDIR,
    "dicomdirtests/DICOMDIR-empty.dcm": _DICOMDIR,
    "dicomdirtests/DICOMDIR-implicit": _DICOMDIR,
    "dicomdirtests/DICOMDIR-nooffset": _DICOMDIR,
    "dicomdirtests/DICOMDIR-nopatient": _DICOMDIR,
    "dicomdirtests/DICOMDIR-reordered": _DICOMDIR,
    "dicomdirtests/TINY_ALPHA/DICOMDIR": _DICOMDIR,
    # A CT Image without Pixel Data: IOD conformance beyond the four UIDs is not checked.
    "dicomdirtests/TINY_ALPHA/PT000000/ST000000/SE000000/IM000000": STORED,
}
