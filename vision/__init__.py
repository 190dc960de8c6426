"""Batched video analytics for every camera at once: background, zones, detectors, replay."""

from ._pipeline import ANALYSIS_SIZE, FrameBatch, VisionPipeline, to_analysis_gray
from ._replay import ReplayError, replay
from ._worker import VisionStats, VisionWorker, parse_shard, shard_cameras

__all__ = [
    "ANALYSIS_SIZE",
    "FrameBatch",
    "ReplayError",
    "VisionPipeline",
    "VisionStats",
    "VisionWorker",
    "parse_shard",
    "replay",
    "shard_cameras",
    "to_analysis_gray",
]
