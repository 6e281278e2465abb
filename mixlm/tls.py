"""The TLS client context for Kafka and Cassandra from Settings' file paths: one recipe for both drivers."""

from __future__ import annotations

import ssl


def client_context(cafile: str = "", certfile: str = "", keyfile: str = "", check_hostname: bool = True) -> ssl.SSLContext:
    """Verify the server against cafile (the system CAs when empty); present certfile/keyfile when the server asks
    for a client certificate; check that the certificate names the host dialled unless check_hostname is off."""
    context = ssl.create_default_context(cafile=cafile or None)
    context.check_hostname = check_hostname  # before verify_mode: create_default_context set both on
    if certfile:
        context.load_cert_chain(certfile, keyfile or None)
    return context
