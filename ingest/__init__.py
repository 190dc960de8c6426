"""MQTT consumers that validate payloads and write them to the store in batches."""

from ._service import IngestService, IngestStats

__all__ = ["IngestService", "IngestStats"]
