"""Hand-built inline SVG charts: metric-vs-cost scatter with the Pareto front, and stacked memory bars.

Every text that reaches the SVG goes through markupsafe.escape; the result is Markup, safe to
insert into the autoescaped template as is.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from markupsafe import Markup, escape

# Okabe-Ito: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#999933", "#000000")
BREAKDOWN_PARTS = (
    ("weights_bytes", "weights", "#0072B2"),
    ("gradients_bytes", "gradients", "#E69F00"),
    ("optimizer_state_bytes", "optimizer state", "#009E73"),
    ("activations_bytes", "activations", "#CC79A7"),
    ("other_bytes", "other (runtime, workspace…)", "#BBBBBB"),
)
WIDTH, HEIGHT, LEGEND_WIDTH = 470, 320, 150
LEFT, RIGHT, TOP, BOTTOM = 70, 16, 16, 50


@dataclass(frozen=True)
class Point:
    """One strategy on a chart: x, y, optional ±1 std error bars and its colour."""

    name: str
    x: float
    y: float
    color: str
    x_err: float | None = None
    y_err: float | None = None


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high]."""
    if high <= low:
        low, high = low - 1, high + 1
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _padded(values: list[float], fraction: float = 0.08) -> tuple[float, float]:
    low, high = min(values), max(values)
    if high == low:  # one value: show a window around it rather than a sliver
        half = abs(high) * 0.05 or 1.0
        return low - half, high + half
    return low - (high - low) * fraction, high + (high - low) * fraction


def decimal_labels(ticks: list[float]):
    """A label function showing as many decimals as the tick step needs."""
    step = abs(ticks[1] - ticks[0]) if len(ticks) > 1 else 1.0
    decimals = next((d for d in range(8) if abs(round(step, d) - step) <= step * 1e-6), 8)
    return lambda v: f"{v:,.{decimals}f}"


def byte_ticks(low: float, high: float) -> tuple[list[float], Callable[[float], str]]:
    """Ticks at round numbers of one binary unit (MiB, GiB, ...) and their labels."""
    unit, name = 1, "B"
    for factor, unit_name in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if high >= factor:
            unit, name = factor, unit_name
            break
    ticks = [t * unit for t in nice_ticks(low / unit, high / unit)]
    label = decimal_labels([t / unit for t in ticks])
    return ticks, lambda v: f"{label(v / unit)} {name}"


def linear_ticks(low: float, high: float) -> tuple[list[float], Callable[[float], str]]:
    """Round ticks and labels with the decimals their step needs."""
    ticks = nice_ticks(low, high)
    return ticks, decimal_labels(ticks)


def pareto_front(points: list[Point], higher_x_better: bool, higher_y_better: bool) -> list[Point]:
    """The points no other point beats on both axes, ordered by x."""

    def beats(a: Point, b: Point) -> bool:
        x_ok = a.x >= b.x if higher_x_better else a.x <= b.x
        y_ok = a.y >= b.y if higher_y_better else a.y <= b.y
        return x_ok and y_ok and (a.x != b.x or a.y != b.y)

    front = [p for p in points if not any(beats(q, p) for q in points)]
    return sorted(front, key=lambda p: (p.x, p.y))


def _text(x, y, content, anchor="middle", size=12, extra="") -> str:
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" {extra}>{escape(content)}</text>'


def _legend(items: list[tuple[str, str, str]], x: float) -> list[str]:
    """items: (label, colour, shape in {'dot', 'box', 'dash'})."""
    parts = []
    for i, (label, color, shape) in enumerate(items):
        y = TOP + 10 + i * 20
        if shape == "dot":
            parts.append(f'<circle cx="{x + 6}" cy="{y}" r="5" fill="{color}"/>')
        elif shape == "box":
            parts.append(f'<rect x="{x}" y="{y - 6}" width="12" height="12" fill="{color}"/>')
        else:
            parts.append(
                f'<line x1="{x}" y1="{y}" x2="{x + 14}" y2="{y}" stroke="{color}" stroke-width="2" '
                'stroke-dasharray="5 3"/>'
            )
        parts.append(_text(x + 20, y + 4, label, anchor="start", size=11))
    return parts


def _y_grid(ticks: list[float], low: float, high: float, to_y, label_of) -> list[str]:
    """Horizontal grid lines with their labels at the ticks inside [low, high]."""
    parts = []
    for tick in ticks:
        if low <= tick <= high:
            parts.append(
                f'<line x1="{LEFT}" y1="{to_y(tick):.1f}" x2="{WIDTH - RIGHT}" y2="{to_y(tick):.1f}" stroke="#eee"/>'
            )
            parts.append(_text(LEFT - 6, to_y(tick) + 4, label_of(tick), anchor="end", size=10))
    return parts


def _frame(title: str, x_label: str, y_label: str) -> list[str]:
    plot_bottom = HEIGHT - BOTTOM
    return [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH + LEGEND_WIDTH} '
        f'{HEIGHT}" width="{WIDTH + LEGEND_WIDTH}" height="{HEIGHT}" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" height="{plot_bottom - TOP}" '
        'fill="#fff" stroke="#888"/>',
        _text((LEFT + WIDTH - RIGHT) / 2, HEIGHT - 10, x_label, size=12, extra='font-weight="600"'),
        _text(
            16,
            (TOP + plot_bottom) / 2,
            y_label,
            size=12,
            extra=f'font-weight="600" transform="rotate(-90 16 {(TOP + plot_bottom) / 2:.1f})"',
        ),
    ]


def scatter_chart(
    points: list[Point],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_ticks,
    x_format,
    y_format,
    higher_x_better: bool,
    higher_y_better: bool,
) -> Markup:
    """A scatter of strategies with ±1 std error bars, name labels and the Pareto front as a dashed line.

    x_ticks(low, high) gives (tick values, label function); x_format/y_format label a point's values.
    """
    points = [p for p in points if _finite(p.x) and _finite(p.y)]
    parts = _frame(title, x_label, y_label)
    if not points:
        parts.append(_text(WIDTH / 2, HEIGHT / 2, "no data to plot"))
        return Markup("\n".join(parts + ["</svg>"]))
    x_low, x_high = _padded([p.x - (p.x_err or 0) for p in points] + [p.x + (p.x_err or 0) for p in points])
    y_low, y_high = _padded([p.y - (p.y_err or 0) for p in points] + [p.y + (p.y_err or 0) for p in points])
    to_x = lambda v: LEFT + (v - x_low) / (x_high - x_low) * (WIDTH - LEFT - RIGHT)  # noqa: E731
    to_y = lambda v: HEIGHT - BOTTOM - (v - y_low) / (y_high - y_low) * (HEIGHT - BOTTOM - TOP)  # noqa: E731
    x_values, x_label_of = x_ticks(x_low, x_high)
    for tick in x_values:
        if x_low <= tick <= x_high:
            parts.append(
                f'<line x1="{to_x(tick):.1f}" y1="{TOP}" x2="{to_x(tick):.1f}" y2="{HEIGHT - BOTTOM}" stroke="#eee"/>'
            )
            parts.append(_text(to_x(tick), HEIGHT - BOTTOM + 16, x_label_of(tick), size=10))
    y_values, y_label_of = linear_ticks(y_low, y_high)
    parts += _y_grid(y_values, y_low, y_high, to_y, y_label_of)
    front = pareto_front(points, higher_x_better, higher_y_better)
    if len(front) > 1:
        path = " ".join(f"{to_x(p.x):.1f},{to_y(p.y):.1f}" for p in front)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#444" stroke-width="1.5" stroke-dasharray="5 3"/>')
    for p in points:
        cx, cy = to_x(p.x), to_y(p.y)
        if p.y_err:
            parts.append(
                f'<line x1="{cx:.1f}" y1="{to_y(p.y - p.y_err):.1f}" x2="{cx:.1f}" '
                f'y2="{to_y(p.y + p.y_err):.1f}" stroke="{p.color}"/>'
            )
        if p.x_err:
            parts.append(
                f'<line x1="{to_x(p.x - p.x_err):.1f}" y1="{cy:.1f}" x2="{to_x(p.x + p.x_err):.1f}" '
                f'y2="{cy:.1f}" stroke="{p.color}"/>'
            )
        on_front = p in front
        parts.append(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{6 if on_front else 5}" fill="{p.color}" '
            f'stroke="{"#222" if on_front else "#fff"}" stroke-width="1.5">'
            f"<title>{escape(p.name)}: {escape(x_format(p.x))}, {escape(y_format(p.y))}</title></circle>"
        )
    parts += _point_labels(points, to_x, to_y)
    legend = [(p.name, p.color, "dot") for p in points] + [("Pareto front", "#444", "dash")]
    if any(p.x_err or p.y_err for p in points):
        legend.append(("bars: ±1 std (seeds)", "#888", "dash"))
    parts += _legend(legend, WIDTH + 10)
    return Markup("\n".join(parts + ["</svg>"]))


def line_chart(
    series: list[tuple[str, str, list[tuple[float, float]]]],
    *,
    title: str,
    x_label: str,
    y_label: str,
    x_format: Callable[[float], str],
    y_format: Callable[[float], str],
) -> Markup:
    """One line per (name, colour, [(x, y), ...]), points marked, e.g. a learning curve per strategy."""
    series = [(n, c, [(x, y) for x, y in pts if _finite(x) and _finite(y)]) for n, c, pts in series]
    series = [item for item in series if item[2]]
    parts = _frame(title, x_label, y_label)
    if not series:
        parts.append(_text(WIDTH / 2, HEIGHT / 2, "no data to plot"))
        return Markup("\n".join(parts + ["</svg>"]))
    x_low, x_high = _padded([x for _, _, pts in series for x, _ in pts])
    y_low, y_high = _padded([y for _, _, pts in series for _, y in pts])
    to_x = lambda v: LEFT + (v - x_low) / (x_high - x_low) * (WIDTH - LEFT - RIGHT)  # noqa: E731
    to_y = lambda v: HEIGHT - BOTTOM - (v - y_low) / (y_high - y_low) * (HEIGHT - BOTTOM - TOP)  # noqa: E731
    for (values, label_of), vertical in ((linear_ticks(x_low, x_high), True), (linear_ticks(y_low, y_high), False)):
        for tick in values:
            if vertical and x_low <= tick <= x_high:
                parts.append(
                    f'<line x1="{to_x(tick):.1f}" y1="{TOP}" x2="{to_x(tick):.1f}" y2="{HEIGHT - BOTTOM}" '
                    'stroke="#eee"/>'
                )
                parts.append(_text(to_x(tick), HEIGHT - BOTTOM + 16, label_of(tick), size=10))
            elif not vertical and y_low <= tick <= y_high:
                parts.append(
                    f'<line x1="{LEFT}" y1="{to_y(tick):.1f}" x2="{WIDTH - RIGHT}" y2="{to_y(tick):.1f}" '
                    'stroke="#eee"/>'
                )
                parts.append(_text(LEFT - 6, to_y(tick) + 4, label_of(tick), anchor="end", size=10))
    for name, color, pts in series:
        path = " ".join(f"{to_x(x):.1f},{to_y(y):.1f}" for x, y in pts)
        parts.append(f'<polyline class="curve" points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for x, y in pts:
            parts.append(
                f'<circle cx="{to_x(x):.1f}" cy="{to_y(y):.1f}" r="3" fill="{color}">'
                f"<title>{escape(name)}: {escape(x_format(x))}, {escape(y_format(y))}</title></circle>"
            )
    parts += _legend([(name, color, "dot") for name, color, _ in series], WIDTH + 10)
    return Markup("\n".join(parts + ["</svg>"]))


@dataclass(frozen=True)
class RunPoint:
    """One run on a history chart: its mean over seeds, their std (None for one seed), and a regression."""

    index: int
    mean: float
    std: float | None
    n: int
    regression: str | None = None  # the gate's reason, where it flagged this run against the previous one


def history_chart(
    points: list[RunPoint], run_labels: list[str], *, title: str, y_label: str, y_format: Callable[[float], str]
) -> Markup:
    """A figure over runs (x: the runs in order, labelled by commit): the mean with a band of ±1 std over
    seeds, and each regression the gate flagged as a red ring with its reason."""
    points = [p for p in points if _finite(p.mean)]
    parts = _frame(title, "run (commit, oldest first)", y_label)
    if not points:
        parts.append(_text(WIDTH / 2, HEIGHT / 2, "no data to plot"))
        return Markup("\n".join(parts + ["</svg>"]))
    spread = [p.mean + sign * (p.std or 0.0) for p in points for sign in (-1, 1)]
    y_low, y_high = _padded(spread)
    x_high = max(len(run_labels) - 1, 1)
    to_x = lambda i: LEFT + 20 + i / x_high * (WIDTH - LEFT - RIGHT - 40)  # noqa: E731
    to_y = lambda v: HEIGHT - BOTTOM - (v - y_low) / (y_high - y_low) * (HEIGHT - BOTTOM - TOP)  # noqa: E731
    parts += _y_grid(linear_ticks(y_low, y_high)[0], y_low, y_high, to_y, y_format)
    for index, label in enumerate(run_labels):
        parts.append(_text(to_x(index), HEIGHT - BOTTOM + 16, label, size=9))
    banded = [p for p in points if p.std is not None]
    if banded:
        upper = " ".join(f"{to_x(p.index):.1f},{to_y(p.mean + (p.std or 0.0)):.1f}" for p in banded)
        lower = " ".join(f"{to_x(p.index):.1f},{to_y(p.mean - (p.std or 0.0)):.1f}" for p in reversed(banded))
        parts.append(f'<polygon class="band" points="{upper} {lower}" fill="#0072B2" fill-opacity="0.15"/>')
    line = " ".join(f"{to_x(p.index):.1f},{to_y(p.mean):.1f}" for p in points)
    parts.append(f'<polyline class="curve" points="{line}" fill="none" stroke="#0072B2" stroke-width="2"/>')
    for p in points:
        spread_text = f" ± {y_format(p.std)}" if p.std is not None else " (one seed)"
        tip = f"{run_labels[p.index]}: {y_format(p.mean)}{spread_text}, n = {p.n}"
        if p.regression:
            tip += f"; regression: {p.regression}"
            parts.append(
                f'<circle class="regression" cx="{to_x(p.index):.1f}" cy="{to_y(p.mean):.1f}" r="8" fill="none" '
                f'stroke="#D55E00" stroke-width="3"><title>{escape(tip)}</title></circle>'
            )
        parts.append(
            f'<circle cx="{to_x(p.index):.1f}" cy="{to_y(p.mean):.1f}" r="3.5" fill="#0072B2">'
            f"<title>{escape(tip)}</title></circle>"
        )
    legend = [
        ("mean over seeds", "#0072B2", "dot"),
        ("±1 std", "#9CC3E0", "box"),
        ("regression (gate)", "#D55E00", "dot"),
    ]
    parts += _legend(legend, WIDTH + 10)
    return Markup("\n".join(parts + ["</svg>"]))


def _point_labels(points: list[Point], to_x, to_y) -> list[str]:
    """Names beside the points, nudged up or down so that they do not overlap; one label per spot."""
    spots: dict[tuple[int, int], list[str]] = {}
    for p in points:
        spots.setdefault((round(to_x(p.x)), round(to_y(p.y))), []).append(p.name)
    placed: list[tuple[float, float, float, float]] = []
    labels = []
    for (x, y), names in sorted(spots.items(), key=lambda item: (item[0][1], item[0][0])):
        text = ", ".join(names)
        width, right_half = 6.0 * len(text), x > (LEFT + WIDTH) / 2
        left = x - 9 - width if right_half else x + 9
        for dy in (-7, 15, -19, 27, -31, 39):
            box = (left, y + dy - 10, left + width, y + dy + 2)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
        placed.append(box)
        labels.append(_text(left, y + dy, text, anchor="start", size=10, extra='fill="#333"'))
    return labels


def stacked_bars(bars: list[tuple[str, dict]], *, title: str) -> Markup:
    """One bar per strategy, stacked by BREAKDOWN_PARTS; bars: (strategy, {part key: bytes})."""
    parts = _frame(title, "strategy", "peak training memory")
    totals = [sum(v or 0 for v in breakdown.values()) for _, breakdown in bars]
    top = max(totals or [0]) * 1.08 or 1.0
    to_y = lambda v: HEIGHT - BOTTOM - v / top * (HEIGHT - BOTTOM - TOP)  # noqa: E731
    tick_values, value_format = byte_ticks(0, top)
    for tick in tick_values:
        if tick <= top:
            parts.append(
                f'<line x1="{LEFT}" y1="{to_y(tick):.1f}" x2="{WIDTH - RIGHT}" y2="{to_y(tick):.1f}" stroke="#eee"/>'
            )
            parts.append(_text(LEFT - 6, to_y(tick) + 4, value_format(tick), anchor="end", size=10))
    slot = (WIDTH - LEFT - RIGHT) / max(len(bars), 1)
    for i, (name, breakdown) in enumerate(bars):
        x, base = LEFT + i * slot + slot * 0.2, 0.0
        for key, label, color in BREAKDOWN_PARTS:
            value = breakdown.get(key) or 0
            if value > 0:
                parts.append(
                    f'<rect x="{x:.1f}" y="{to_y(base + value):.1f}" width="{slot * 0.6:.1f}" '
                    f'height="{to_y(base) - to_y(base + value):.1f}" fill="{color}">'
                    f"<title>{escape(name)}: {escape(label)} {escape(value_format(value))}</title></rect>"
                )
                base += value
        parts.append(_text(x + slot * 0.3, HEIGHT - BOTTOM + 16, name, size=11))
    parts += _legend([(label, color, "box") for _, label, color in BREAKDOWN_PARTS], WIDTH + 10)
    return Markup("\n".join(parts + ["</svg>"]))


def _finite(value) -> bool:
    return value is not None and isinstance(value, (int, float)) and math.isfinite(value)
