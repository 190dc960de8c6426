"""Speeding alerts carry the vehicle's speed and the limit in their titles, which the alert
row stores; the CAP message reads them back as ``speedKmh`` and ``limitKmh`` parameters.

(The alert row has no columns for them; a title is what the operator reads anyway.)
"""

from __future__ import annotations

import re

from protocol import KindProfile

_FIGURES = re.compile(r"(\d+(?:\.\d+)?) km/h \(limit (\d+(?:\.\d+)?) km/h\)$")


def speeding_titles(profile: KindProfile, speed_kmh: float, limit_kmh: float) -> tuple[str, str]:
    """The vi-VN and en-US titles of a speeding alert, with the speed and the limit."""
    return (
        f"{profile.title_vi}: {speed_kmh:g} km/h (giới hạn {limit_kmh:g} km/h)",
        f"{profile.title_en}: {speed_kmh:g} km/h (limit {limit_kmh:g} km/h)",
    )


def speeding_figures(title_en: str) -> tuple[str, str] | None:
    """``(speed, limit)`` in km/h as written in a speeding alert's English title."""
    match = _FIGURES.search(title_en)
    return (match.group(1), match.group(2)) if match else None
