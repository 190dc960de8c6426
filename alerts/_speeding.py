"""Speeding alerts carry the vehicle's speed and the limit in their titles, for the operator
to read; the alert row also keeps them as fields (``speed_kmh``, ``limit_kmh``), which the
CAP message carries as ``speedKmh`` and ``limitKmh`` parameters.
"""

from __future__ import annotations

from protocol import KindProfile


def speeding_titles(profile: KindProfile, speed_kmh: float, limit_kmh: float) -> tuple[str, str]:
    """The vi-VN and en-US titles of a speeding alert, with the speed and the limit."""
    return (
        f"{profile.title_vi}: {speed_kmh:g} km/h (giới hạn {limit_kmh:g} km/h)",
        f"{profile.title_en}: {speed_kmh:g} km/h (limit {limit_kmh:g} km/h)",
    )
