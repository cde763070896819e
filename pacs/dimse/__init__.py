"""DICOM upper-layer services: the hardened association server and the C-ECHO / C-STORE SCP."""
