"""History and rankings as CSV and as PNG charts.

CSV is long format (one row per series and bucket) with both UTC and local bucket starts,
which spreadsheets and pandas read without reshaping. Charts use matplotlib's Agg canvas
directly (no pyplot global state), so renders in worker threads do not interfere: series
compare as lines against local time, rankings as horizontal bars.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter
from matplotlib.figure import Figure

from ._planner import Ranked, Series

LOCAL = ZoneInfo("Asia/Ho_Chi_Minh")
MAX_CHART_SERIES = 12
"""A chart with more lines is unreadable: the busiest are drawn, the rest are named."""


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def text_cell(value: object) -> str:
    """A text cell a spreadsheet shows as text: one starting like a formula (``=HYPERLINK``
    in a camera's name) gets a leading apostrophe (OWASP's CSV injection advice)."""
    text = str(value)
    return f"'{text}" if text.startswith(_FORMULA_START) else text


def to_csv(series: Sequence[Series], value_name: str) -> str:
    keys: list[str] = []
    for s in series:
        keys.extend(k for k in s.key if k not in keys)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180 line ends
    writer.writerow(["bucket_start_utc", "bucket_start_local", *keys, value_name])
    for s in series:
        key_values = [text_cell(s.key.get(k, "")) for k in keys]
        for p in s.points:
            writer.writerow(
                [
                    p.t.astimezone(UTC).isoformat().replace("+00:00", "Z"),
                    p.t.astimezone(LOCAL).isoformat(),
                    *key_values,
                    f"{p.value:g}",
                ]
            )
    return out.getvalue()


def ranking_csv(ranking: Sequence[Ranked], measure: str) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["rank", "id", "name", measure])
    for r in ranking:
        writer.writerow([r.rank, text_cell(r.id), text_cell(r.name), r.total])
    return out.getvalue()


def _figure(width_px: int, height_px: int) -> Figure:
    dpi = 100
    figure = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def to_bar_png(
    ranking: Sequence[Ranked], *, title: str, xlabel: str, width_px: int = 1200
) -> bytes:
    """Horizontal bars, the busiest at the top; PNG bytes."""
    figure = _figure(width_px, width_px // 2)
    axes = figure.add_subplot()
    labels = [r.name if r.name == r.id else f"{r.name} ({r.id})" for r in ranking]
    positions = range(len(ranking))
    axes.barh(positions, [r.total for r in ranking], color="#3fa7ff")
    axes.set_yticks(list(positions), labels, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel(xlabel)
    axes.grid(axis="x", alpha=0.3)
    axes.set_title(title, fontsize=11)
    if not ranking:
        axes.text(0.5, 0.5, "no data", transform=axes.transAxes, ha="center", va="center")
    return _png(figure)


def _days(t: datetime) -> float:
    """matplotlib's date number: days since its default epoch, 1970-01-01 UTC."""
    return t.timestamp() / 86_400


def to_png(
    series: Sequence[Series],
    *,
    title: str,
    ylabel: str,
    labels: Mapping[str, str] | None = None,
    width_px: int = 1200,
) -> bytes:
    """A line chart of the busiest series against local time, each named by ``labels``
    (by its own label when absent); PNG bytes."""
    labels = labels or {}
    figure = _figure(width_px, width_px // 2)
    axes = figure.add_subplot()
    ranked = sorted(series, key=lambda s: s.total, reverse=True)
    drawn, hidden = ranked[:MAX_CHART_SERIES], ranked[MAX_CHART_SERIES:]
    for s in drawn:
        axes.plot(
            [_days(p.t) for p in s.points],
            [p.value for p in s.points],
            label=labels.get(s.label, s.label),
            linewidth=1.4,
            drawstyle="steps-post",
        )
    # matplotlib's stubs leave these two constructors unannotated.
    locator = AutoDateLocator(tz=LOCAL)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator, tz=LOCAL))  # type: ignore[no-untyped-call]
    axes.set_xlabel("Asia/Ho_Chi_Minh")
    axes.set_ylabel(ylabel)
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    suffix = f" (+{len(hidden)} quieter series not drawn)" if hidden else ""
    axes.set_title(title + suffix, fontsize=11)
    if drawn:
        axes.legend(fontsize=8, loc="upper left", ncols=2 if len(drawn) > 6 else 1)
    else:
        axes.text(0.5, 0.5, "no data", transform=axes.transAxes, ha="center", va="center")
    return _png(figure)
