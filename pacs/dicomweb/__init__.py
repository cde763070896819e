"""DICOMweb (PS3.18) over the index and the object store: QIDO-RS so far."""
