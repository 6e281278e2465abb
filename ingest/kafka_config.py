"""kafka-python client options from Settings: bootstrap, security (SASL/TLS). One place for every client."""

from __future__ import annotations

from mixlm.errors import ServiceError
from mixlm.settings import Settings


def kafka_config(settings: Settings) -> dict:
    if not settings.kafka_bootstrap:
        raise ServiceError("no Kafka configured: set MIXLM_KAFKA_BOOTSTRAP (e.g. 127.0.0.1:9092)")
    config: dict = {
        "bootstrap_servers": [s.strip() for s in settings.kafka_bootstrap.split(",") if s.strip()],
        "security_protocol": settings.kafka_security_protocol,
        "client_id": "mixlm",
    }
    if settings.kafka_sasl_mechanism:
        config |= {
            "sasl_mechanism": settings.kafka_sasl_mechanism,
            "sasl_plain_username": settings.kafka_username,
            "sasl_plain_password": settings.kafka_password,
        }
    if settings.kafka_ssl_cafile:
        config["ssl_cafile"] = settings.kafka_ssl_cafile
    return config
