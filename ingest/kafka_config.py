"""kafka-python client options from Settings: bootstrap, security (SASL/TLS). One place for every client."""

from __future__ import annotations

import ssl

from mixlm.errors import ServiceError
from mixlm.settings import Settings
from mixlm.tls import client_context


def kafka_config(settings: Settings) -> dict:
    if not settings.kafka_bootstrap:
        raise ServiceError("no Kafka configured: set MIXLM_KAFKA_BOOTSTRAP (e.g. 127.0.0.1:9092)")
    config: dict = {
        "bootstrap_servers": [s.strip() for s in settings.kafka_bootstrap.split(",") if s.strip()],
        "security_protocol": settings.kafka_security_protocol,
        "client_id": "mixlm",
    }
    if settings.kafka_sasl_mechanism:
        config |= {  # kafka-python takes SCRAM credentials under the sasl_plain_* names too
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_username,
            "sasl_plain_password": settings.kafka_password,
        }
    if settings.kafka_ssl_cafile:
        config["ssl_cafile"] = settings.kafka_ssl_cafile
    if settings.kafka_ssl_certfile:
        config |= {"ssl_certfile": settings.kafka_ssl_certfile, "ssl_keyfile": settings.kafka_ssl_keyfile or None}
    if settings.kafka_security_protocol.endswith("SSL"):
        config["ssl_check_hostname"] = settings.kafka_ssl_check_hostname
    return config


def kafka_ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The same TLS settings as an SSLContext, for clients that take one (Faust/aiokafka); None without TLS."""
    if not (settings.kafka_security_protocol.endswith("SSL") or settings.kafka_ssl_cafile):
        return None
    return client_context(settings.kafka_ssl_cafile, settings.kafka_ssl_certfile, settings.kafka_ssl_keyfile,
                          settings.kafka_ssl_check_hostname)
