"""Edge agents: camera sources, frame encoding, Wi-Fi collectors and the city simulator."""

from ._clips import ClipError, ClipLibrary, EncodedClip, encode_clip
from ._simulator import CitySimulator, SimulatorStats
from ._wifi import VisitorHasher, WifiFleet, busyness

__all__ = [
    "CitySimulator",
    "ClipError",
    "ClipLibrary",
    "EncodedClip",
    "SimulatorStats",
    "VisitorHasher",
    "WifiFleet",
    "busyness",
    "encode_clip",
]
