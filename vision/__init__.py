"""Batched video analytics for every camera at once: decode, background, blobs, tracks,
zone detectors, speed gates, camera health, traffic metrics; the live worker and file
replay."""

from ._batch import FrameBatch
from ._decode import EncodedFrame, FrameDecoder, RefusedFrame
from ._lease import LeaseLost, ShardLease
from ._pipeline import ANALYSIS_SIZE, BatchResult, VisionPipeline, to_analysis_gray
from ._replay import ReplayError, replay
from ._speed import SpeedMeasurement
from ._worker import VisionStats, VisionWorker, parse_shard, shard_cameras

__all__ = [
    "ANALYSIS_SIZE",
    "BatchResult",
    "EncodedFrame",
    "FrameBatch",
    "FrameDecoder",
    "LeaseLost",
    "RefusedFrame",
    "ReplayError",
    "ShardLease",
    "SpeedMeasurement",
    "VisionPipeline",
    "VisionStats",
    "VisionWorker",
    "parse_shard",
    "replay",
    "shard_cameras",
    "to_analysis_gray",
]
