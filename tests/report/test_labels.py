"""Point labels do not overlap, even when the points do; the Pareto plot carries both intervals."""

from __future__ import annotations

import itertools

from matplotlib.text import Text

from qeval import stats
from qeval.report._html import PARETO_NOTE, _draw_pareto
from qeval.report._labels import MARKER_PX, _overlap, place_labels


def _disjoint(boxes):
    return all(_overlap(a, b) == 0 for a, b in itertools.combinations(boxes, 2))


def test_labels_of_one_spot_do_not_overlap_each_other_or_the_point():
    anchors = [(200.0, 150.0)] * 5
    boxes = place_labels(anchors, [(60.0, 12.0)] * 5, bounds=(0, 0, 400, 300))
    assert _disjoint(boxes)
    point = (200 - MARKER_PX, 150 - MARKER_PX, 200 + MARKER_PX, 150 + MARKER_PX)
    assert all(_overlap(b, point) == 0 for b in boxes)
    assert all(0 <= b[0] and b[2] <= 400 and 0 <= b[1] and b[3] <= 300 for b in boxes)


def test_a_label_near_the_edge_stays_inside():
    (box,) = place_labels([(395.0, 295.0)], [(60.0, 12.0)], bounds=(0, 0, 400, 300))
    assert box[2] <= 400 and box[3] <= 300


def test_pareto_labels_of_coinciding_targets_are_disjoint_on_the_figure(factory):
    same = factory.latency()
    cells = tuple(factory.ok_cell(t, "arith", accuracy=0.5, latency=same) for t in ("fp32", "bf16", "int8", "int4"))
    fig = _draw_pareto(factory.make_record(cells=cells))
    renderer = fig.canvas.get_renderer()
    ax = fig.axes[0]
    texts = [t for t in ax.texts if t.get_text().split(" ")[0] in ("fp32", "bf16", "int8", "int4")]
    assert len(texts) == 4
    for t in texts:
        t.get_window_extent(renderer)  # places the annotation
    extents = [Text.get_window_extent(t, renderer) for t in texts]  # the text, not its leader line
    assert _disjoint([(e.x0, e.y0, e.x1, e.y1) for e in extents])


def test_the_note_says_what_the_latency_bar_is():
    assert "order-statistic" in PARETO_NOTE and f"{stats.min_samples_for_quantile(0.95)} of them" in PARETO_NOTE
