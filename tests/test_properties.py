"""Property-based tests (hypothesis) of the afw-like pixel geometry and of the FITS formats.

Set operations of ``Box2I``, ``SpanSet``, ``Footprint``, ``HeavyFootprint`` and
``MultibandFootprint`` are checked against a plain numpy boolean-mask model: every pixel
set is drawn as a handful of horizontal runs in a small local frame, moved by a random
(possibly negative) offset, and rasterised by the test itself (never through the library)
onto a window that holds it with a margin. FITS round trips of random multiband exposures
and source catalogues must give back every value bit for bit.

All properties run derandomised (``derandomize=True``, no example database), so CI sees
the same examples on every run.
"""

from __future__ import annotations

import string
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, assume, given, note, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from lsst.meas.extensions.madness.afw import (
    Box2I,
    Extent2I,
    Footprint,
    HeavyFootprint,
    ImageF,
    Mask,
    MaskedImage,
    MultibandExposure,
    MultibandFootprint,
    PeakRecord,
    PhotoCalib,
    Point2I,
    Schema,
    SourceCatalog,
    SourceTable,
    Span,
    SpanSet,
    makeHeavyFootprint,
)
from lsst.meas.extensions.madness.afw.image import MAX_MASK_PLANES
from lsst.meas.extensions.madness.io import (
    readExposureFiles,
    readMultibandExposureFits,
    readSourceCatalogFits,
    writeExposureFits,
    writeMultibandExposureFits,
    writeSourceCatalogFits,
)

_COMMON = dict(
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
SET_OPS = settings(max_examples=60, **_COMMON)
FITS_IO = settings(max_examples=25, **_COMMON)

# --------------------------------------------------------------------------------------
# Pixel-set strategies and the numpy boolean-mask model
# --------------------------------------------------------------------------------------

HALF = 20  # the model window is [offset - HALF, offset + HALF) in x and y
LOCAL = st.integers(-8, 8)
RUN = st.tuples(LOCAL, LOCAL, st.integers(1, 6))  # (y, x0, width) in the local frame
RUNS = st.lists(RUN, max_size=10)
NONEMPTY_RUNS = st.lists(RUN, min_size=1, max_size=10)
OFFSET = st.tuples(st.integers(-5000, 5000), st.integers(-5000, 5000))
RADIUS = st.integers(0, 3)


def runArrays(runs, offset):
    """``(y, x0, x1)`` int64 arrays of runs moved by ``offset = (dx, dy)``."""
    dx, dy = offset
    y = np.array([r[0] + dy for r in runs], dtype=np.int64)
    x0 = np.array([r[1] + dx for r in runs], dtype=np.int64)
    x1 = np.array([r[1] + r[2] - 1 + dx for r in runs], dtype=np.int64)
    return y, x0, x1


def makeSpans(runs, offset) -> SpanSet:
    return SpanSet.fromArrays(*runArrays(runs, offset))


def window(offset) -> Box2I:
    dx, dy = offset
    return Box2I(Point2I(dx - HALF, dy - HALF), Extent2I(2 * HALF, 2 * HALF))


def rasterise(y, x0, x1, box: Box2I) -> np.ndarray:
    """The model: a boolean ``[y, x]`` array over ``box``, True on the runs (clipped to it)."""
    mask = np.zeros((box.getHeight(), box.getWidth()), dtype=bool)
    for yy, a, b in zip(np.asarray(y).tolist(), np.asarray(x0).tolist(), np.asarray(x1).tolist()):
        if not box.getMinY() <= yy <= box.getMaxY():
            continue
        a, b = max(a, box.getMinX()), min(b, box.getMaxX())
        if a <= b:
            mask[yy - box.getMinY(), a - box.getMinX() : b - box.getMinX() + 1] = True
    return mask


def modelOf(runs, offset) -> np.ndarray:
    return rasterise(*runArrays(runs, offset), window(offset))


def maskOf(spans: SpanSet, box: Box2I) -> np.ndarray:
    """Rasterise a SpanSet's raw runs (not through the library), checking none fall outside ``box``."""
    inside = rasterise(spans.y, spans.x0, spans.x1, box)
    assert int(inside.sum()) == int((spans.x1 - spans.x0 + 1).sum()), "SpanSet has pixels outside the model window"
    return inside


def boxMask(box: Box2I, win: Box2I) -> np.ndarray:
    mask = np.zeros((win.getHeight(), win.getWidth()), dtype=bool)
    if not box.isEmpty():
        ys = slice(max(box.getMinY() - win.getMinY(), 0), max(box.getMaxY() - win.getMinY() + 1, 0))
        xs = slice(max(box.getMinX() - win.getMinX(), 0), max(box.getMaxX() - win.getMinX() + 1, 0))
        mask[ys, xs] = True
    return mask


def maskBBox(mask: np.ndarray, win: Box2I) -> Box2I:
    """The bounding box of a model mask, in parent coordinates (empty box for an empty mask)."""
    if not mask.any():
        return Box2I()
    ys, xs = np.nonzero(mask)
    return Box2I(
        Point2I(win.getMinX() + int(xs.min()), win.getMinY() + int(ys.min())),
        Point2I(win.getMinX() + int(xs.max()), win.getMinY() + int(ys.max())),
    )


def modelPixels(mask: np.ndarray, win: Box2I) -> tuple[np.ndarray, np.ndarray]:
    """``(y, x)`` parent positions of a mask's pixels, row by row, left to right."""
    ys, xs = np.nonzero(mask)  # C order: row-major, exactly afw's span order
    return ys + win.getMinY(), xs + win.getMinX()


def assertCanonical(spans: SpanSet) -> None:
    """Runs sorted by (y, x0), non-empty, and neither overlapping nor touching within a row."""
    y, x0, x1 = spans.y, spans.x0, spans.x1
    assert y.shape == x0.shape == x1.shape
    assert np.all(x1 >= x0)
    if y.size > 1:
        sameRow = y[1:] == y[:-1]
        assert np.all(y[1:] >= y[:-1])
        assert np.all(x0[1:][sameRow] > x1[:-1][sameRow] + 1)


def shiftMask(mask: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``mask`` moved by ``(dx, dy)`` pixels, zero-filled (no wrap-around)."""
    out = np.zeros_like(mask)
    h, w = mask.shape
    out[max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = mask[
        max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def discOffsets(radius: int):
    return [(dy, dx) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)
            if dx * dx + dy * dy <= radius * radius]


def modelDilate(mask: np.ndarray, radius: int) -> np.ndarray:
    out = np.zeros_like(mask)
    for dy, dx in discOffsets(radius):
        out |= shiftMask(mask, dy, dx)
    return out


def modelErode(mask: np.ndarray, radius: int) -> np.ndarray:
    out = np.ones_like(mask)
    for dy, dx in discOffsets(radius):
        out &= shiftMask(mask, -dy, -dx)
    return out


# --------------------------------------------------------------------------------------
# Box2I
# --------------------------------------------------------------------------------------

BOX_WINDOW = Box2I(Point2I(-30, -30), Extent2I(60, 60))
BOXES = st.builds(
    lambda x, y, w, h: Box2I(Point2I(x, y), Extent2I(w, h)),
    st.integers(-10, 10),
    st.integers(-10, 10),
    st.integers(-2, 8),
    st.integers(-2, 8),
)
NONEMPTY_BOXES = BOXES.filter(lambda b: not b.isEmpty())


@SET_OPS
@given(a=BOXES, b=BOXES, x=st.integers(-15, 20), y=st.integers(-15, 20))
def test_box_operations_match_masks(a, b, x, y):
    ma, mb = boxMask(a, BOX_WINDOW), boxMask(b, BOX_WINDOW)
    assert a.getArea() == ma.sum() and a.isEmpty() == (not ma.any())
    assert (a.getWidth(), a.getHeight()) == ((ma.any(axis=0).sum(), ma.any(axis=1).sum()) if ma.any() else (0, 0))
    np.testing.assert_array_equal(boxMask(a.clippedTo(b), BOX_WINDOW), ma & mb)
    assert a.clippedTo(b) == b.clippedTo(a)
    assert a.overlaps(b) == bool((ma & mb).any()) == b.overlaps(a)
    assert a.contains(b) == bool(np.all(ma[mb]))
    assert a.expandedTo(b) == maskBBox(ma | mb, BOX_WINDOW) == b.expandedTo(a)
    assert a.contains(Point2I(x, y)) == bool(ma[y - BOX_WINDOW.getMinY(), x - BOX_WINDOW.getMinX()])
    assert (a == b) == bool(np.array_equal(ma, mb))
    # In-place versions agree with the pure ones.
    c = a.copy()
    c.clip(b)
    assert c == a.clippedTo(b)
    c = a.copy()
    c.include(b)
    assert c == a.expandedTo(b)


@SET_OPS
@given(a=NONEMPTY_BOXES, dx=st.integers(-5, 5), dy=st.integers(-5, 5), ox=st.integers(-5, 5), oy=st.integers(-5, 5))
def test_box_shift_and_slices(a, dx, dy, ox, oy):
    shifted = a.shiftedBy(Extent2I(dx, dy))
    np.testing.assert_array_equal(boxMask(shifted, BOX_WINDOW), shiftMask(boxMask(a, BOX_WINDOW), dy, dx))
    assert shifted.shiftedBy(Extent2I(-dx, -dy)) == a
    xy0 = Point2I(a.getMinX() - abs(ox), a.getMinY() - abs(oy))
    assert Box2I.fromSlices(a.getSlices(xy0), xy0) == a
    parent = np.zeros((a.getMaxY() - xy0.y + 1, a.getMaxX() - xy0.x + 1), dtype=bool)
    parent[a.getSlices(xy0)] = True
    assert parent.sum() == a.getArea()


@SET_OPS
@given(a=NONEMPTY_BOXES, amount=st.integers(-4, 4))
def test_box_dilatedBy_is_chebyshev_growth(a, amount):
    ma = boxMask(a, BOX_WINDOW)
    grown = np.zeros_like(ma) if amount >= 0 else np.ones_like(ma)
    for dy in range(-abs(amount), abs(amount) + 1):
        for dx in range(-abs(amount), abs(amount) + 1):
            if amount >= 0:
                grown |= shiftMask(ma, dy, dx)
            else:
                grown &= shiftMask(ma, dy, dx)
    np.testing.assert_array_equal(boxMask(a.dilatedBy(amount), BOX_WINDOW), grown)


@SET_OPS
@given(a=BOXES.filter(lambda b: b.isEmpty()), amount=st.integers(1, 4))
def test_empty_box_dilatedBy_stays_empty(a, amount):
    # lsst.geom.Box2I.dilatedBy (Box2I::grow) leaves an empty box empty.
    assert a.dilatedBy(amount).isEmpty()


@SET_OPS
@given(a=BOXES, b=BOXES)
def test_equal_boxes_hash_equal(a, b):
    # Box2I is hashable and compares all empty boxes equal: equal objects need equal hashes.
    if a == b:
        assert hash(a) == hash(b)


# --------------------------------------------------------------------------------------
# SpanSet: construction, normal form, geometry
# --------------------------------------------------------------------------------------


@SET_OPS
@given(runs=RUNS, offset=OFFSET, order=st.randoms(use_true_random=False))
def test_spanset_normal_form_matches_mask(runs, offset, order):
    win = window(offset)
    model = modelOf(runs, offset)
    spans = makeSpans(runs, offset)
    assertCanonical(spans)
    np.testing.assert_array_equal(maskOf(spans, win), model)
    assert spans.getArea() == model.sum()
    assert spans.isEmpty() == (not model.any())
    # One span per maximal horizontal run of the mask.
    padded = np.pad(model, ((0, 0), (1, 1)))
    assert len(spans) == int((np.diff(padded.astype(np.int8), axis=1) == 1).sum())
    # The normal form does not depend on how the set was given.
    shuffled = list(runs)
    order.shuffle(shuffled)
    assert makeSpans(shuffled, offset) == spans
    y, x0, x1 = runArrays(runs, offset)
    assert SpanSet([Span(int(a), int(b), int(c)) for a, b, c in zip(y, x0, x1)]) == spans
    assert SpanSet.fromMask(model, xy0=win.getMin()) == spans
    assert SpanSet(list(spans)) == spans
    assert [(s.y, s.x0, s.x1) for s in spans] == list(zip(spans.y.tolist(), spans.x0.tolist(), spans.x1.tolist()))
    assert spans.copy() == spans


@SET_OPS
@given(a=RUNS, b=RUNS, offset=OFFSET)
def test_spanset_equality_is_mask_equality(a, b, offset):
    assert (makeSpans(a, offset) == makeSpans(b, offset)) == bool(np.array_equal(modelOf(a, offset),
                                                                                 modelOf(b, offset)))


@SET_OPS
@given(runs=RUNS, offset=OFFSET)
def test_spanset_bbox_indices_centroid(runs, offset):
    win = window(offset)
    model = modelOf(runs, offset)
    spans = makeSpans(runs, offset)
    assert spans.getBBox() == maskBBox(model, win)
    ys, xs = spans.indices()
    my, mx = modelPixels(model, win)
    np.testing.assert_array_equal(ys, my)
    np.testing.assert_array_equal(xs, mx)
    if model.any():
        centroid = spans.computeCentroid()
        assert centroid.x == pytest.approx(mx.mean(), abs=1e-9)
        assert centroid.y == pytest.approx(my.mean(), abs=1e-9)
    else:
        with pytest.raises(ValueError):
            spans.computeCentroid()


@SET_OPS
@given(runs=RUNS, offset=OFFSET, box=BOXES, bitmask=st.integers(1, 2**30))
def test_spanset_asArray_fromMask_round_trips(runs, offset, box, bitmask):
    win = window(offset)
    model = modelOf(runs, offset)
    spans = makeSpans(runs, offset)
    np.testing.assert_array_equal(spans.asArray(win), model)
    bbox = spans.getBBox()
    cropped = spans.asArray()
    assert cropped.shape == (bbox.getHeight(), bbox.getWidth())
    if not bbox.isEmpty():
        np.testing.assert_array_equal(cropped, model[bbox.getSlices(win.getMin())])
        assert SpanSet.fromMask(cropped, xy0=bbox.getMin()) == spans
    # asArray over an arbitrary box (moved next to the set) is the model cut to that box.
    other = box.shiftedBy(Extent2I(offset[0], offset[1]))
    np.testing.assert_array_equal(spans.asArray(other),
                                  model[boxMask(other, win)].reshape(other.getHeight(), other.getWidth()))
    # fromMask of an afw-like Mask takes its xy0 and selects pixels with any bit of bitmask.
    values = np.where(model, np.int32(bitmask), np.int32(0))
    assert SpanSet.fromMask(Mask(values, xy0=win.getMin()), bitmask) == spans
    assert SpanSet.fromMask(Mask(values, xy0=win.getMin()), ~bitmask & (2**31 - 1)).isEmpty()
    assert SpanSet.fromMask(ImageF(model.astype(np.float32), xy0=win.getMin())) == spans


@SET_OPS
@given(a=RUNS, b=RUNS, c=RUNS, offset=OFFSET)
def test_spanset_set_algebra(a, b, c, offset):
    win = window(offset)
    A, B, C = (makeSpans(r, offset) for r in (a, b, c))
    mA, mB, _mC = (modelOf(r, offset) for r in (a, b, c))
    union, inter, diff = A.union(B), A.intersect(B), A.intersectNot(B)
    for result in (union, inter, diff):
        assertCanonical(result)
    np.testing.assert_array_equal(maskOf(union, win), mA | mB)
    np.testing.assert_array_equal(maskOf(inter, win), mA & mB)
    np.testing.assert_array_equal(maskOf(diff, win), mA & ~mB)
    assert union == B.union(A) and inter == B.intersect(A)
    assert diff.intersect(B).isEmpty()
    assert diff.union(inter) == A
    assert A.union(A) == A and A.intersect(A) == A and A.intersectNot(A).isEmpty()
    assert A.union(SpanSet()) == A and A.intersect(SpanSet()).isEmpty() and A.intersectNot(SpanSet()) == A
    assert A.union(B).union(C) == A.union(B.union(C))
    assert A.intersect(B).intersect(C) == A.intersect(B.intersect(C))
    assert A.intersect(B.union(C)) == A.intersect(B).union(A.intersect(C))
    assert A.intersectNot(B.union(C)) == A.intersectNot(B).intersect(A.intersectNot(C))
    assert union.getArea() == A.getArea() + B.getArea() - inter.getArea()
    assert A.contains(B) == bool(np.all(mA[mB]))
    assert union.contains(A) and union.contains(B) and A.contains(inter) and A.contains(diff)


@SET_OPS
@given(a=RUNS, b=RUNS, offset=OFFSET, bitmask=st.integers(1, 2**30), noise=st.integers(0, 2**30))
def test_spanset_intersect_with_mask_plane(a, b, offset, bitmask, noise):
    win = window(offset)
    A = makeSpans(a, offset)
    mA, mB = modelOf(a, offset), modelOf(b, offset)
    # Bits outside bitmask must not count.
    values = np.where(mB, np.int32(bitmask), np.int32(noise & ~bitmask))
    mask = Mask(values, xy0=win.getMin())
    np.testing.assert_array_equal(maskOf(A.intersect(mask, bitmask), win), mA & mB)
    np.testing.assert_array_equal(maskOf(A.intersectNot(mask, bitmask), win), mA & ~mB)


@SET_OPS
@given(runs=RUNS, offset=OFFSET,
       points=st.lists(st.tuples(st.integers(-HALF, HALF - 1), st.integers(-HALF, HALF - 1)), max_size=20))
def test_spanset_contains_points(runs, offset, points):
    win = window(offset)
    model = modelOf(runs, offset)
    spans = makeSpans(runs, offset)
    xs = np.array([p[0] + offset[0] for p in points], dtype=np.int64)
    ys = np.array([p[1] + offset[1] for p in points], dtype=np.int64)
    expected = model[ys - win.getMinY(), xs - win.getMinX()] if points else np.zeros(0, bool)
    assert [spans.contains(Point2I(int(x), int(y))) for x, y in zip(xs, ys)] == expected.tolist()
    np.testing.assert_array_equal(spans.containsPixels(xs, ys), expected)


@SET_OPS
@given(runs=RUNS, offset=OFFSET, box=BOXES)
def test_spanset_clippedTo_is_mask_and_box(runs, offset, box):
    win = window(offset)
    box = box.shiftedBy(Extent2I(offset[0], offset[1]))
    spans = makeSpans(runs, offset)
    clipped = spans.clippedTo(box)
    assertCanonical(clipped)
    np.testing.assert_array_equal(maskOf(clipped, win), modelOf(runs, offset) & boxMask(box, win))
    assert clipped == spans.intersect(SpanSet(box))
    assert box.contains(clipped.getBBox())


@SET_OPS
@given(runs=RUNS, offset=OFFSET, dx=st.integers(-6, 6), dy=st.integers(-6, 6))
def test_spanset_shiftedBy_is_translation(runs, offset, dx, dy):
    win = window(offset)
    spans = makeSpans(runs, offset)
    shifted = spans.shiftedBy(dx, dy)
    assertCanonical(shifted)
    np.testing.assert_array_equal(maskOf(shifted, win), shiftMask(modelOf(runs, offset), dy, dx))
    assert shifted == spans.shiftedBy(Extent2I(dx, dy))
    assert shifted.shiftedBy(-dx, -dy) == spans
    assert shifted.getArea() == spans.getArea()
    assert shifted.getBBox() == spans.getBBox().shiftedBy(Extent2I(dx, dy))


@SET_OPS
@given(runs=RUNS, offset=OFFSET, radius=RADIUS)
def test_spanset_dilate_erode_match_disc_morphology(runs, offset, radius):
    win = window(offset)
    model = modelOf(runs, offset)
    spans = makeSpans(runs, offset)
    dilated, eroded = spans.dilated(radius), spans.eroded(radius)
    assertCanonical(dilated)
    assertCanonical(eroded)
    np.testing.assert_array_equal(maskOf(dilated, win), modelDilate(model, radius))
    np.testing.assert_array_equal(maskOf(eroded, win), modelErode(model, radius))
    assert dilated.contains(spans) and spans.contains(eroded)
    assert dilated.eroded(radius).contains(spans)  # closing is extensive
    assert spans.contains(eroded.dilated(radius))  # opening is anti-extensive
    if radius == 0:
        assert dilated == spans == eroded


@SET_OPS
@given(runs=RUNS, offset=OFFSET, bands=st.integers(1, 3), seed=st.integers(0, 2**32 - 1),
       fill=st.sampled_from([0.0, -1.0, np.nan]))
def test_spanset_flatten_unflatten_round_trip(runs, offset, bands, seed, fill):
    win = window(offset)
    model = modelOf(runs, offset)
    spans = makeSpans(runs, offset)
    cube = np.random.default_rng(seed).normal(size=(bands, 2 * HALF, 2 * HALF)).astype(np.float32)
    values = spans.flatten(cube, win.getMin())
    assert values.shape == (bands, spans.getArea())
    my, mx = modelPixels(model, win)
    np.testing.assert_array_equal(values, cube[:, my - win.getMinY(), mx - win.getMinX()])
    back = spans.unflatten(values, win, fill=fill)
    np.testing.assert_array_equal(back, np.where(model, cube, np.float32(fill)))
    if not spans.isEmpty():
        with pytest.raises(ValueError):  # an array that misses the set's left column
            spans.flatten(cube, Point2I(spans.getBBox().getMinX() + 1, win.getMinY()))


@SET_OPS
@given(runs=RUNS, offset=OFFSET, box=BOXES, bit=st.integers(0, MAX_MASK_PLANES - 1), start=st.integers(0, 2**31 - 1))
def test_spanset_setMask_clearMask(runs, offset, box, bit, start):
    win = window(offset)
    box = box.shiftedBy(Extent2I(offset[0], offset[1]))
    assume(not box.isEmpty())
    spans = makeSpans(runs, offset)
    inBox = (modelOf(runs, offset) & boxMask(box, win))[box.getSlices(win.getMin())]
    initial = np.full((box.getHeight(), box.getWidth()), np.int32(start))
    mask = Mask(initial.copy(), xy0=box.getMin())
    spans.setMask(mask, 1 << bit)
    np.testing.assert_array_equal(mask.array, np.where(inBox, initial | np.int32(1 << bit), initial))
    spans.clearMask(mask, 1 << bit)
    np.testing.assert_array_equal(mask.array, np.where(inBox, initial & ~np.int32(1 << bit), initial))


INT32 = st.integers(-(2**31), 2**31 - 1)
EDGE_INT32 = st.sampled_from([-(2**31), -(2**31) + 1, -(2**31) + 2, -1, 0, 1, 2**31 - 3, 2**31 - 2, 2**31 - 1]) | INT32


@SET_OPS
@given(runs=st.lists(st.tuples(EDGE_INT32, EDGE_INT32, st.integers(0, 3)), max_size=6))
def test_spanset_normal_form_with_int32_coordinates(runs):
    """Spans anywhere in the int32 range the SPANS table can hold merge like in a pure-Python model."""
    runs = [(y, x0, min(x0 + w, 2**31 - 1)) for y, x0, w in runs]
    rows: dict[int, list[list[int]]] = {}
    for y, x0, x1 in sorted(runs, key=lambda r: (r[0], r[1])):
        merged = rows.setdefault(y, [])
        if merged and x0 <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], x1)
        else:
            merged.append([x0, x1])
    expected = [(y, a, b) for y in sorted(rows) for a, b in rows[y]]
    spans = SpanSet.fromArrays([r[0] for r in runs], [r[1] for r in runs], [r[2] for r in runs])
    assert [(s.y, s.x0, s.x1) for s in spans] == expected


# --------------------------------------------------------------------------------------
# Footprints and heavy footprints
# --------------------------------------------------------------------------------------


@st.composite
def peaksIn(draw, model: np.ndarray, win: Box2I, maxPeaks: int = 4):
    """Up to ``maxPeaks`` peaks on pixels of the model mask (sub-pixel positions anywhere)."""
    my, mx = modelPixels(model, win)
    if my.size == 0:
        return []
    picks = draw(st.lists(st.integers(0, my.size - 1), max_size=maxPeaks))
    return [
        PeakRecord(
            draw(st.integers(-(2**63), 2**63 - 1)),
            int(mx[i]),
            int(my[i]),
            draw(st.floats(allow_nan=False, allow_infinity=False)),
            draw(st.floats(allow_nan=False, allow_infinity=False)),
            draw(st.floats()),
        )
        for i in picks
    ]


@SET_OPS
@given(data=st.data(), runs=NONEMPTY_RUNS, offset=OFFSET, box=BOXES, dx=st.integers(-6, 6), dy=st.integers(-6, 6))
def test_footprint_shift_and_clip(data, runs, offset, box, dx, dy):
    win = window(offset)
    model = modelOf(runs, offset)
    peaks = data.draw(peaksIn(model, win))
    footprint = Footprint(makeSpans(runs, offset), peaks)
    assert footprint.getArea() == model.sum() and footprint.getBBox() == maskBBox(model, win)
    shifted = footprint.copy()
    shifted.shift(dx, dy)
    assert footprint.getSpans() == makeSpans(runs, offset)  # the copy is independent
    assert shifted.getSpans() == footprint.getSpans().shiftedBy(dx, dy)
    assert [(p.ix, p.iy) for p in shifted.getPeaks()] == [(p.ix + dx, p.iy + dy) for p in peaks]
    assert all(shifted.contains(p.getI()) for p in shifted.getPeaks())
    box = box.shiftedBy(Extent2I(offset[0], offset[1]))
    clipped = footprint.copy()
    clipped.clipTo(box)
    np.testing.assert_array_equal(maskOf(clipped.getSpans(), win), model & boxMask(box, win))
    assert [p.id for p in clipped.getPeaks()] == [p.id for p in peaks if box.contains(p.getI())]


@SET_OPS
@given(runs=NONEMPTY_RUNS, offset=OFFSET, margin=st.integers(0, 3), seed=st.integers(0, 2**32 - 1), sub=BOXES)
def test_heavy_footprint_keeps_pixel_values_in_span_order(runs, offset, margin, seed, sub):
    win = window(offset)
    model = modelOf(runs, offset)
    spans = makeSpans(runs, offset)
    box = spans.getBBox().dilatedBy(margin)
    rng = np.random.default_rng(seed)
    shape = (box.getHeight(), box.getWidth())
    source = MaskedImage(
        ImageF(rng.normal(size=shape).astype(np.float32), xy0=box.getMin()),
        Mask(rng.integers(0, 2**31 - 1, size=shape, dtype=np.int32), xy0=box.getMin()),
        ImageF(rng.uniform(0, 10, size=shape).astype(np.float32), xy0=box.getMin()),
    )
    heavy = makeHeavyFootprint(Footprint(spans), source)
    my, mx = modelPixels(model, win)
    iy, ix = my - box.getMinY(), mx - box.getMinX()
    np.testing.assert_array_equal(heavy.getImageArray(), source.image.array[iy, ix])
    np.testing.assert_array_equal(heavy.getMaskArray(), source.mask.array[iy, ix])
    np.testing.assert_array_equal(heavy.getVarianceArray(), source.variance.array[iy, ix])
    onBox = model[box.getSlices(win.getMin())]
    # insert writes exactly the footprint pixels.
    target = MaskedImage(box)
    heavy.insert(target)
    np.testing.assert_array_equal(target.image.array, np.where(onBox, source.image.array, 0))
    np.testing.assert_array_equal(target.mask.array, np.where(onBox, source.mask.array, 0))
    np.testing.assert_array_equal(target.variance.array, np.where(onBox, source.variance.array, 0))
    extracted = heavy.extractImage(fill=np.nan, bbox=box)
    np.testing.assert_array_equal(extracted.array, np.where(onBox, source.image.array, np.nan))
    # addTo then subtractFrom is the identity (finite values, exact in float32 here: x + v - v with x = 0).
    image = ImageF(box)
    heavy.addTo(image)
    np.testing.assert_array_equal(image.array, np.where(onBox, source.image.array, 0))
    heavy.subtractFrom(image)
    assert not np.any(image.array)
    # insert into an image that only partly overlaps writes only the overlap.
    part = sub.shiftedBy(Extent2I(offset[0], offset[1]))
    assume(not part.isEmpty())
    partial = ImageF(part)
    heavy.insert(partial)
    inPart = (model & boxMask(part, win))[part.getSlices(win.getMin())]
    full = np.zeros((2 * HALF, 2 * HALF), np.float32)
    full[box.getSlices(win.getMin())] = source.image.array
    np.testing.assert_array_equal(partial.array, np.where(inPart, full[part.getSlices(win.getMin())], 0))
    # copy is equal and independent.
    copy = heavy.copy()
    assert copy == heavy
    copy.getImageArray()[...] += 1
    assert copy != heavy or heavy.getArea() == 0


@SET_OPS
@given(
    runs=NONEMPTY_RUNS,
    offset=OFFSET,
    nBands=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
    thresh=st.floats(-1.0, 1.0),
)
def test_multiband_footprint_from_arrays(runs, offset, nBands, seed, thresh):
    win = window(offset)
    model = modelOf(runs, offset)
    bands = tuple("ugriz"[:nBands])
    rng = np.random.default_rng(seed)
    shape = (nBands, 2 * HALF, 2 * HALF)
    cube = rng.normal(size=shape).astype(np.float32)
    maskCube = rng.integers(0, 2**20, size=shape, dtype=np.int32)
    varCube = rng.uniform(0, 1, size=shape).astype(np.float32)
    footprint = Footprint(makeSpans(runs, offset))
    mFoot = MultibandFootprint.fromArrays(bands, cube, maskCube, varCube, footprint=footprint, xy0=win.getMin())
    my, mx = modelPixels(model, win)
    iy, ix = my - win.getMinY(), mx - win.getMinX()
    assert mFoot.bands == bands and mFoot.getArea() == model.sum()
    np.testing.assert_array_equal(mFoot.getImageArray(), cube[:, iy, ix])
    np.testing.assert_array_equal(mFoot.getMaskArray(), maskCube[:, iy, ix])
    np.testing.assert_array_equal(mFoot.getVarianceArray(), varCube[:, iy, ix])
    for b, band in enumerate(bands):
        assert mFoot[band].getSpans() == footprint.getSpans()
        np.testing.assert_array_equal(mFoot[band].getImageArray(), cube[b, iy, ix])
    np.testing.assert_array_equal(mFoot.getImage(bbox=win, fill=0).array, np.where(model, cube, 0))
    target = MultibandExposure.fromArrays(bands, np.zeros(shape, np.float32), bbox=win)
    mFoot.insert(target)
    np.testing.assert_array_equal(target.image.array, np.where(model, cube, 0))
    np.testing.assert_array_equal(target.mask.array, np.where(model, maskCube, 0))
    np.testing.assert_array_equal(target.variance.array, np.where(model, varCube, 0))
    # Without a footprint, the spans are the pixels where any band exceeds thresh.
    detected = MultibandFootprint.fromArrays(bands, cube, xy0=win.getMin(), thresh=thresh)
    np.testing.assert_array_equal(maskOf(detected.getSpans(), win), np.any(cube > np.float32(thresh), axis=0))


# --------------------------------------------------------------------------------------
# FITS round trips
# --------------------------------------------------------------------------------------

FINITE32 = st.floats(width=32, allow_nan=False, allow_infinity=False)
EXTREME32 = st.sampled_from(
    [float(np.float32(v)) for v in (3.4028235e38, -3.4028235e38, 1.1754944e-38, -0.0, 1e-45, -1e-45)]
)
PLANE_NAMES = st.from_regex(r"[A-Z][A-Z0-9_]{0,19}", fullmatch=True)
BAND_NAMES = st.from_regex(r"[A-Za-z0-9_\-]{1,6}", fullmatch=True)


def bits(array: np.ndarray) -> np.ndarray:
    """The raw bit pattern, so -0.0 and NaN payloads count too."""
    array = np.ascontiguousarray(array)
    return array.view({4: np.uint32, 8: np.uint64}[array.dtype.itemsize]) if array.dtype.kind == "f" else array


def assertBitEqual(read: np.ndarray, original: np.ndarray) -> None:
    assert read.dtype == original.dtype, (read.dtype, original.dtype)
    assert read.shape == original.shape
    np.testing.assert_array_equal(bits(read), bits(original))


@st.composite
def multibandExposures(draw):
    nBands = draw(st.integers(1, 6))
    bands = tuple(draw(st.lists(BAND_NAMES, min_size=nBands, max_size=nBands, unique=True)))
    height, width = draw(st.integers(1, 20)), draw(st.integers(1, 20))
    shape = (nBands, height, width)
    xy0 = Point2I(draw(st.integers(-(2**20), 2**20)), draw(st.integers(-(2**20), 2**20)))
    image = draw(hnp.arrays(np.float32, shape, elements=FINITE32 | EXTREME32))
    variance = draw(hnp.arrays(np.float32, shape, elements=st.floats(0, np.finfo(np.float32).max, width=32)))
    names = draw(st.lists(PLANE_NAMES, min_size=1, max_size=8, unique=True))
    planeBits = draw(st.lists(st.integers(0, MAX_MASK_PLANES - 1), min_size=len(names), max_size=len(names),
                              unique=True))
    planes = dict(zip(names, planeBits))
    subsets = st.lists(st.sampled_from(planeBits), unique=True).map(lambda bs: sum(1 << b for b in bs))
    mask = draw(hnp.arrays(np.int32, shape, elements=subsets))
    # PSFs: odd sides (one shape for all bands), positive, point-symmetric so centred, unit sum.
    py, px = draw(st.sampled_from([1, 3, 5, 7, 9, 11])), draw(st.sampled_from([1, 3, 5, 7, 9, 11]))
    psfs = []
    for _ in range(nBands):
        half = draw(hnp.arrays(np.float32, (py, px), elements=st.floats(0, float(np.float32(1e30)), width=32)))
        kernel = (half + half[::-1, ::-1]).astype(np.float64)
        kernel[py // 2, px // 2] += 1.0
        psfs.append((kernel / kernel.sum()).astype(np.float32))
    # Calibrations: all bands in nJy (BUNIT), or any positive nJy per count (MAGZERO).
    inNanojansky = draw(st.booleans())
    means = [1.0] * nBands if inNanojansky else draw(st.lists(st.floats(1e-6, 1e6), min_size=nBands, max_size=nBands))
    mExposure = MultibandExposure.fromArrays(
        bands, image, mask, variance, bbox=Box2I(xy0, Extent2I(width, height)), psfs=psfs, maskPlanes=planes,
        photoCalibs=[PhotoCalib(m) for m in means],
    )
    return mExposure


def assertExposuresEqual(back: MultibandExposure, original: MultibandExposure) -> None:
    assert back.bands == original.bands
    assert back.getBBox() == original.getBBox() and back.getXY0() == original.getXY0()
    for plane in ("image", "mask", "variance"):
        assertBitEqual(getattr(back, plane).array, getattr(original, plane).array)
    assert back.mask.getMaskPlaneDict() == original.mask.getMaskPlaneDict()
    for readPsf, psf in zip(back.getPsfs(), original.getPsfs()):
        assertBitEqual(readPsf.kernel, psf.kernel)
    # MAGZERO keeps 15 significant digits of a magnitude: the calibration to 1e-13.
    for readCalib, calib in zip(back.getPhotoCalibs(), original.getPhotoCalibs()):
        assert readCalib.getCalibrationMean() == pytest.approx(calib.getCalibrationMean(), rel=1e-12, abs=0)


@FITS_IO
@given(mExposure=multibandExposures())
def test_multiband_exposure_fits_round_trip(mExposure):
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "exposure.fits"
        mExposure.writeFits(path)
        assertExposuresEqual(MultibandExposure.readFits(path), mExposure)
        # The module-level functions are the same format.
        writeMultibandExposureFits(mExposure, path)
        assertExposuresEqual(readMultibandExposureFits(path), mExposure)


@settings(FITS_IO, max_examples=10)
@given(mExposure=multibandExposures())
def test_single_band_exposure_files_round_trip(mExposure):
    with tempfile.TemporaryDirectory() as directory:
        paths = []
        for i, band in enumerate(mExposure.bands):
            paths.append(Path(directory) / f"calexp_{i}.fits")
            writeExposureFits(mExposure[band], paths[-1])
        assertExposuresEqual(readExposureFiles(paths), mExposure)


# Catalogue field values by afw type code. FITS ignores trailing blanks in character
# columns and header strings (afw's files too), so generated strings have none.
FIELD_VALUES = {
    "I": st.integers(-(2**31), 2**31 - 1),
    "L": st.integers(-(2**63), 2**63 - 1),
    "F": st.floats(width=32),
    "D": st.floats(),
    "Angle": st.floats(),
    "Flag": st.booleans(),
    "String": st.text(alphabet=string.ascii_letters + string.digits + string.punctuation + " ",
                      max_size=12).map(str.rstrip),
}
TEXT = st.text(alphabet=string.ascii_letters + string.digits + " .,;:()[]/'-_", max_size=90).map(str.rstrip)
UNITS = st.sampled_from(["", "nJy", "pixel", "rad", "mag", "ct"])
PEAK_EXTRA_VALUES = {"bool": st.booleans(), "int": st.integers(-(2**63), 2**63 - 1), "float": st.floats()}
PEAK_EXTRA_NAMES = st.sampled_from(["merge_peak_sky", "merge_peak_g", "n_detections", "significance"])
HEAVY_KINDS = st.sampled_from([None, "SINGLE", "MULTIBAND"])
# The writer tries each catalogue's file once; shrinking a failure still re-runs it a few
# hundred times, so leave out hypothesis' costly "explain" phase.
CATALOG_IO = settings(FITS_IO, phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink])


@st.composite
def schemas(draw) -> Schema:
    """The minimal schema plus up to six random fields of every afw type, docs and units."""
    schema = SourceTable.makeMinimalSchema()
    for i, code in enumerate(draw(st.lists(st.sampled_from(sorted(FIELD_VALUES)), max_size=6))):
        schema.addField(f"field{i}_{code.lower()}", type=code, doc=draw(TEXT), units=draw(UNITS))
    return schema


@st.composite
def records(draw, catalog: SourceCatalog, nRecords: int) -> list[int]:
    """Add records with unique random ids, parents among them (or 0) and random field values."""
    ids = draw(st.lists(st.integers(1, 2**63 - 1), min_size=nRecords, max_size=nRecords, unique=True))
    for sourceId in ids:
        record = catalog.addNew()
        record.setId(sourceId)
        record.setParent(draw(st.sampled_from([0] + [i for i in ids if i != sourceId])))
        for field in catalog.schema.getFields()[4:]:
            record.set(field.name, draw(FIELD_VALUES[field.type]))
    return ids


@st.composite
def footprintCatalogs(draw, extraValues=PEAK_EXTRA_VALUES):
    """A catalogue with random spans, 0-4 peaks (with extra fields) and heavy footprints.

    Returns the catalogue and the bbox to give the writer (or None).
    """
    peakExtras = draw(st.dictionaries(PEAK_EXTRA_NAMES, st.sampled_from(sorted(extraValues)), max_size=3))
    heavyKind = draw(HEAVY_KINDS)
    bands = tuple(draw(st.lists(BAND_NAMES, min_size=1, max_size=6, unique=True))) if heavyKind == "MULTIBAND" else ()
    catalog = SourceCatalog(SourceTable.makeMinimalSchema())
    draw(records(catalog, draw(st.integers(0, 5))))
    offset = draw(st.tuples(st.integers(-(2**24), 2**24), st.integers(-(2**24), 2**24)))
    allSpans = SpanSet()
    for record in catalog:
        if not draw(st.booleans()):
            continue  # no footprint
        runs = draw(NONEMPTY_RUNS)
        spans = makeSpans(runs, offset)
        allSpans = allSpans.union(spans)
        peaks = draw(peaksIn(modelOf(runs, offset), window(offset)))
        for peak in peaks:
            peak.extra = {name: draw(extraValues[kind]) for name, kind in peakExtras.items()}
        footprint = Footprint(spans, peaks)
        if heavyKind is not None and draw(st.sampled_from([True, True, False])):
            n = spans.getArea()
            nb = len(bands) if heavyKind == "MULTIBAND" else 1
            image = draw(hnp.arrays(np.float32, (nb, n), elements=st.floats(width=32)))
            mask = draw(hnp.arrays(np.int32, (nb, n)))
            variance = draw(hnp.arrays(np.float32, (nb, n), elements=st.floats(width=32)))
            singles = [HeavyFootprint(footprint, image[b], mask[b], variance[b]) for b in range(nb)]
            footprint = MultibandFootprint(bands, singles) if heavyKind == "MULTIBAND" else singles[0]
        record.setFootprint(footprint)
    bbox = None
    if not allSpans.isEmpty() and draw(st.booleans()):
        bbox = allSpans.getBBox().dilatedBy(draw(st.integers(0, 3)))
    return catalog, bbox


def assertPeaksEqual(read, original) -> None:
    assert len(read) == len(original)
    for r, o in zip(read, original):
        assert (r.id, r.ix, r.iy) == (o.id, o.ix, o.iy)
        for name in ("fx", "fy", "peakValue"):
            assertBitEqual(np.float64(getattr(r, name)), np.float64(getattr(o, name)))
        assert r.extra.keys() == o.extra.keys()
        for name, value in o.extra.items():
            assert type(r.extra[name]) is type(value), (name, r.extra[name], value)
            if isinstance(value, float):
                assertBitEqual(np.float64(r.extra[name]), np.float64(value))
            else:
                assert r.extra[name] == value


def assertFootprintsEqual(read, original) -> None:
    if original is None:
        assert read is None
        return
    assert type(read) is type(original)
    assert read.getSpans() == original.getSpans()
    assertPeaksEqual(read.getPeaks(), original.getPeaks())
    if isinstance(original, MultibandFootprint):
        assert read.bands == original.bands
    if original.isHeavy():
        assertBitEqual(read.getImageArray(), original.getImageArray())
        assertBitEqual(read.getMaskArray(), original.getMaskArray())
        assertBitEqual(read.getVarianceArray(), original.getVarianceArray())


def assertCatalogsEqual(back: SourceCatalog, catalog: SourceCatalog) -> None:
    assert [(f.name, f.type, f.doc, f.units) for f in back.schema.getFields()] == [
        (f.name, f.type, f.doc, f.units) for f in catalog.schema.getFields()
    ]
    assert back.schema == catalog.schema
    assert len(back) == len(catalog)
    for field in catalog.schema.getFields():
        if field.type == "String":
            assert back[field.name].tolist() == catalog[field.name].tolist(), field.name
        else:
            assertBitEqual(back[field.name], catalog[field.name])
    for read, original in zip(back, catalog):
        assert (read.getId(), read.getParent()) == (original.getId(), original.getParent())
        assertFootprintsEqual(read.getFootprint(), original.getFootprint())


def describe(catalog: SourceCatalog, bbox: Box2I | None) -> str:
    """A readable account of a drawn catalogue, for hypothesis' failure report."""
    lines = [f"bbox={bbox}", f"schema={[(f.name, f.type, f.doc, f.units) for f in catalog.schema.getFields()]}"]
    for record in catalog:
        footprint = record.getFootprint()
        lines.append(f"record id={record.getId()} parent={record.getParent()} values={record._values}")
        if footprint is not None:
            lines.append(f"  {type(footprint).__name__} spans={[(s.y, s.x0, s.x1) for s in footprint.getSpans()]}")
            lines.extend(f"  peak {peak}" for peak in footprint.getPeaks())
    return "\n".join(lines)


def roundTrip(catalog: SourceCatalog, bbox: Box2I | None, viaMethods: bool) -> SourceCatalog:
    note(describe(catalog, bbox))
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "catalog.fits"
        if viaMethods:
            catalog.writeFits(path, bbox=bbox)
            return SourceCatalog.readFits(path)
        writeSourceCatalogFits(catalog, path, bbox=bbox)
        return readSourceCatalogFits(path)


@CATALOG_IO
@given(data=st.data(), schema=schemas(), nRecords=st.integers(0, 4), viaMethods=st.booleans())
def test_source_catalog_schema_and_columns_round_trip(data, schema, nRecords, viaMethods):
    """Every field (names, afw types, docs, units) and every column value comes back."""
    catalog = SourceCatalog(schema)
    data.draw(records(catalog, nRecords))
    assertCatalogsEqual(roundTrip(catalog, None, viaMethods), catalog)


@settings(CATALOG_IO, max_examples=50)
@given(drawn=footprintCatalogs(), viaMethods=st.booleans())
def test_source_catalog_footprints_round_trip(drawn, viaMethods):
    """Spans, peaks (with extra fields) and heavy pixels (single- or multiband) come back bit for bit."""
    catalog, bbox = drawn
    back = roundTrip(catalog, bbox, viaMethods)
    assertCatalogsEqual(back, catalog)
    if bbox is not None:
        assert all(r.getFootprint() is None or r.getFootprint().getRegion() == bbox for r in back)


@CATALOG_IO
@given(
    drawn=footprintCatalogs(
        extraValues={"str": st.just("") | st.text(alphabet=string.ascii_letters + string.digits + "_-", max_size=8)}
    ),
    viaMethods=st.booleans(),
)
def test_source_catalog_string_peak_fields_round_trip(drawn, viaMethods):
    """Extra peak fields may be strings (the writer stores them in a character column)."""
    catalog, bbox = drawn
    assertCatalogsEqual(roundTrip(catalog, bbox, viaMethods), catalog)
