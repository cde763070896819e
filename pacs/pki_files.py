"""The names of the files in the PKI folder: written by ``pacs.pki``, read by the receiver's TLS
port (``pacs.dimse.tls``), which must not import ``cryptography`` (~10 MB in every receiver
worker) just for them."""

from typing import Final

CA_KEY: Final = "ca.key"
CA_CERT: Final = "ca.pem"
CRL: Final = "crl.pem"
ISSUED: Final = "issued.json"
SERVER: Final = "server"
