"""Point labels that do not overlap: a small greedy placement pass for the report's scatter plots.

Targets often land on top of each other (the same accuracy, a similar latency), and labels at a
fixed offset then print over one another. :func:`place_labels` is pure geometry in display
pixels: each label takes the first spot around its point, in rings of growing distance, that
overlaps no label placed before it, no point's marker and stays inside the axes; when none is
free it takes the spot with the least overlap. :func:`annotate_points` applies it to a
matplotlib axes (a leader line joins a label pushed away from its point).
"""

from __future__ import annotations

from collections.abc import Sequence

Box = tuple[float, float, float, float]
"""(x0, y0, x1, y1) in display pixels."""

_DIRECTIONS = ((1, 1), (1, -1), (-1, 1), (-1, -1), (0, 1), (0, -1), (1, 0), (-1, 0))
RINGS = 6
MARKER_PX = 6.0
"""Half the side of the square kept clear around every point."""


def _overlap(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return w * h if w > 0 and h > 0 else 0.0


def _outside(box: Box, bounds: Box | None) -> float:
    """Area of ``box`` outside ``bounds``."""
    if bounds is None:
        return 0.0
    area = (box[2] - box[0]) * (box[3] - box[1])
    return area - _overlap(box, bounds)


def _candidates(x: float, y: float, w: float, h: float, gap: float) -> list[Box]:
    out = []
    for ring in range(1, RINGS + 1):
        d = gap * ring
        for sx, sy in _DIRECTIONS:
            x0 = x + d if sx > 0 else (x - d - w if sx < 0 else x - w / 2)
            y0 = y + d if sy > 0 else (y - d - h if sy < 0 else y - h / 2)
            out.append((x0, y0, x0 + w, y0 + h))
    return out


def place_labels(
    anchors: Sequence[tuple[float, float]], sizes: Sequence[tuple[float, float]],
    bounds: Box | None = None, gap: float = 6.0,
) -> list[Box]:
    """A box for each label (``sizes``: width, height) near its anchor, in display pixels."""
    markers = [(x - MARKER_PX, y - MARKER_PX, x + MARKER_PX, y + MARKER_PX) for x, y in anchors]
    placed: list[Box] = []
    for (x, y), (w, h) in zip(anchors, sizes, strict=True):
        best, best_cost = None, float("inf")
        for box in _candidates(x, y, w, h, gap):
            cost = sum(_overlap(box, o) for o in (*placed, *markers)) + 2 * _outside(box, bounds)
            if cost == 0:
                best = box
                break
            if cost < best_cost:
                best, best_cost = box, cost
        assert best is not None, "every ring has candidates"
        placed.append(best)
    return placed


def settle_layout(fig) -> None:
    """Lay ``fig`` out once, without rasterizing it, and freeze that layout.

    Label placement needs the final layout (where points and axes fall in pixels). Laying out and
    freezing, rather than drawing, means saving the figure afterwards renders it once and does not
    lay it out again: half of a plot's cost, and labels (kept out of the layout) land where they were
    placed."""
    fig.draw_without_rendering()
    fig.set_layout_engine("none")


def annotate_points(
    ax, xs: Sequence[float], ys: Sequence[float], labels: Sequence[str], fontsize: float = 8, drawn: bool = False,
) -> list:
    """Label each point of ``ax`` without overlaps; returns the annotations.

    Call it once the figure's layout and the axes' limits are final: it reads where the points fall
    from a laid-out figure (it runs :func:`settle_layout`, unless ``drawn`` says the caller did)."""
    fig = ax.figure
    if not drawn:
        settle_layout(fig)
    renderer = fig.canvas.get_renderer()
    anchors = [(float(px), float(py)) for px, py in ax.transData.transform(list(zip(xs, ys)))]
    sizes = []
    for label in labels:  # measured once, off the plot
        probe = ax.text(0, 0, label, fontsize=fontsize)
        extent = probe.get_window_extent(renderer)
        sizes.append((extent.width, extent.height))
        probe.remove()
    frame = ax.get_window_extent(renderer)
    boxes = place_labels(anchors, sizes, (frame.x0, frame.y0, frame.x1, frame.y1))
    to_points = 72.0 / fig.dpi  # offsets in points scale with the dpi the figure is saved at
    texts = []
    for label, x, y, (px, py), box, (w, h) in zip(labels, xs, ys, anchors, boxes, sizes):
        far = abs(box[0] + w / 2 - px) > w / 2 + 10 or abs(box[1] + h / 2 - py) > h / 2 + 10
        text = ax.annotate(label, (x, y), xytext=((box[0] - px) * to_points, (box[1] - py) * to_points),
                           textcoords="offset points",
                           fontsize=fontsize, ha="left", va="bottom",
                           arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.6} if far else None)
        text.set_in_layout(False)  # a label must not move the axes it was placed in
        texts.append(text)
    return texts


__all__ = ["annotate_points", "place_labels", "settle_layout"]
