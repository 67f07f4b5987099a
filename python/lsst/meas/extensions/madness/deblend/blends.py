r"""From a parent footprint on a multiband exposure to what the MAP core fits: the blend's stamps and weights.

For a parent with K peaks, :func:`makeBlend` cuts

- a **canvas**: the footprint's bounding box grown by half a stamp on every side, so that each
  peak's stamp lies inside it. It holds the data and the inverse-variance weights
  :math:`w = 1/\mathrm{var}`, with :math:`w = 0` off the exposure, on pixels whose mask has
  one of ``badMaskPlanes``, where the image or variance is not finite or the variance is not
  positive, and off the footprint: everywhere with ``footprintOnly``, or on the pixels of the
  other parents' footprints (``parentPixels``). The undetected sky around a parent then counts:
  it holds the models' wings to the noise, where a fit on the footprint alone leaves them free
  (a galaxy drawn far brighter than the data around a small footprint, at no cost in χ²);
- for every peak, the corner of its stamp in the canvas, ``round(peak) − stampSize // 2``
  (the decoder draws a galaxy centred in the stamp's central pixel; the paper rounds the
  positions too), and a ``stampSize`` cutout of the data around it, zero off the exposure,
  which the VAE-deblender encoder turns into the starting latent (zero on the pixels of other
  parents' footprints, given ``parentPixels``);
- the exposure's pixel scale (its WCS's, or ``PIXSCALE``), with which a model-frame deblender
  samples its galaxies on the exposure's pixels; the stamps are ``stampSize`` exposure pixels;
- each band's PSF kernel image at the parent's centre, the centre of the footprint's bounding box
  (what a model-frame decoder's stamps are convolved with, :mod:`.observation`, and SCARLET's
  PSF): a PSF that varies over the exposure (:class:`~lsst.meas.extensions.madness.afw.psf.GridPsf`)
  is evaluated where each parent lies.

With ``scales`` (one per band: the deblender's pixel units per unit of the exposure's,
:mod:`.calibration`) the data, weights and cutouts are in the deblender's units; this is the one
place pixels change units. The mask and variance stay the exposure's, for the heavy footprints.

:func:`stackBlends` pads a list of blends to common sizes and K for one batched fit.

Examples
--------
>>> import numpy as np
>>> from lsst.meas.extensions.madness.afw import (Box2I, Extent2I, Footprint, MultibandExposure, Point2I,
...     SpanSet)
>>> image = np.zeros((2, 60, 60), np.float32); image[:, 30, 30] = 100
>>> mExp = MultibandExposure.fromArrays("gr", image, np.zeros((2, 60, 60), np.int32), np.ones_like(image))
>>> foot = Footprint(SpanSet(Box2I(Point2I(25, 25), Extent2I(11, 11))))
>>> _ = foot.addPeak(30.2, 29.8, 100.0)
>>> blend = makeBlend(mExp, foot, stampSize=45)
>>> blend.data.shape, blend.rows.tolist(), blend.cols.tolist(), float(blend.cutouts[0, 0, 22, 22])
((2, 55, 55), [5], [5], 100.0)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..afw.detection import Footprint
from ..afw.exposure import MultibandExposure
from ..afw.geom import Box2I, Extent2I, Point2D, Point2I

__all__ = ["DEFAULT_BAD_MASK_PLANES", "Blend", "canvasCutout", "makeBlend", "parentPixelMap", "stackBlends",
           "withoutData"]

#: Mask planes whose pixels get zero weight by default.
DEFAULT_BAD_MASK_PLANES: tuple[str, ...] = ("BAD", "NO_DATA", "SAT", "SUSPECT", "EDGE")  # LSST's badMask


@dataclass
class Blend:
    """One parent, cut out for the MAP core (pixels in the deblender's units, ``bands`` first)."""

    canvasBox: Box2I  # in the exposure's pixel coordinates
    data: np.ndarray  # (bands, H, W)
    weight: np.ndarray  # (bands, H, W) inverse variance, 0 where ignored
    peakIds: list[int]
    rows: np.ndarray  # (K,) stamp corners in canvas pixels
    cols: np.ndarray  # (K,)
    subpixel: np.ndarray  # (K, 2) peak position minus stamp centre, (dy, dx), in [-0.5, 0.5]
    cutouts: np.ndarray  # (K, bands, S, S)
    mask: np.ndarray  # (bands, H, W) the exposure's mask, 0 off it
    variance: np.ndarray  # (bands, H, W) the exposure's variance (its units), 0 off it
    psfImages: list[np.ndarray] | None = None  # per band, the PSF kernel image at the parent; None without PSFs
    scale: np.ndarray | None = None  # (bands,) deblender units per exposure unit; None: the same units
    pixelScale: float | None = None  # the exposure's pixel side at the parent, arcsec; None: unknown

    @property
    def nPeaks(self) -> int:
        """The number K of peaks (galaxies) of the blend."""
        return len(self.peakIds)


def withoutData(mExposure: MultibandExposure, bands: Sequence[str]) -> MultibandExposure:
    """``mExposure`` with every band of ``bands`` it lacks added as no data, in the order of ``bands``.

    An added band has zero image, zero variance (so zero weight in :func:`makeBlend`) and the
    ``NO_DATA`` mask bit; its PSF is that of the nearest present band in ``bands``' order, which
    only a PSF-convolving deblender (SCARLET) reads, and there with zero weight; it has no
    photometric calibration.

    Parameters
    ----------
    mExposure : `~lsst.meas.extensions.madness.afw.exposure.MultibandExposure`
        The exposure; it must have at least one of ``bands``.
    bands : sequence of `str`
        The bands wanted, in order (a string such as ``"ugrizy"`` is one band per character).

    Returns
    -------
    exposure : `~lsst.meas.extensions.madness.afw.exposure.MultibandExposure`
        A new exposure with exactly ``bands``, in their order; the present bands' pixels are copied.

    Raises
    ------
    ValueError
        If the exposure has none of ``bands``.

    Examples
    --------
    >>> import numpy as np
    >>> from lsst.meas.extensions.madness.afw import (Box2I, Extent2I, Footprint, MultibandExposure, Point2I,
    ...     SpanSet)
    >>> image = np.ones((2, 40, 40), np.float32)                     # bands g, r; 40×40 pixels from (100, 200)
    >>> mExp = MultibandExposure.fromArrays("gr", image, np.zeros(image.shape, np.int32), np.ones_like(image),
    ...                                     bbox=Box2I(Point2I(100, 200), Extent2I(40, 40)))
    >>> parent = Footprint(SpanSet(Box2I(Point2I(110, 210), Extent2I(10, 8))))
    >>> _ = parent.addPeak(113.3, 214.6, 10.0), parent.addPeak(117, 212, 5.0)
    >>> full = withoutData(mExp, "ugr")
    >>> full.bands, float(full.image.array[0].sum()), float(full.variance.array[0].max())
    (('u', 'g', 'r'), 0.0, 0.0)
    """
    present = [b for b in bands if b in mExposure.bands]
    if not present:
        raise ValueError(f"the exposure has none of the bands {list(bands)} (it has {list(mExposure.bands)})")
    shape = mExposure.image.array.shape[1:]
    planes = mExposure.mask.getMaskPlaneDict()
    noData = 1 << planes["NO_DATA"] if "NO_DATA" in planes else 0
    psfs = mExposure.getPsfs()
    image, mask, variance, bandPsfs = [], [], [], []
    for i, band in enumerate(bands):
        if band in mExposure.bands:
            j = mExposure.bands.index(band)
            image.append(mExposure.image.array[j])
            mask.append(mExposure.mask.array[j])
            variance.append(mExposure.variance.array[j])
            bandPsfs.append(psfs[j])
        else:
            nearest = min(present, key=lambda b: abs(list(bands).index(b) - i))
            image.append(np.zeros(shape, mExposure.image.array.dtype))
            mask.append(np.full(shape, noData, mExposure.mask.array.dtype))
            variance.append(np.zeros(shape, mExposure.variance.array.dtype))
            bandPsfs.append(psfs[mExposure.bands.index(nearest)])
    calibs = [mExposure.getPhotoCalibs()[mExposure.bands.index(b)] if b in mExposure.bands else None for b in bands]
    knownPsfs = [p for p in bandPsfs if p is not None]
    return MultibandExposure.fromArrays(list(bands), np.stack(image), np.stack(mask), np.stack(variance),
                                        bbox=mExposure.getBBox(),
                                        psfs=knownPsfs if len(knownPsfs) == len(bandPsfs) else None,
                                        maskPlanes=planes, photoCalibs=calibs, wcs=mExposure.getWcs(),
                                        pixelScale=None if mExposure.getWcs() else mExposure.getPixelScale())


def canvasCutout(mExposure: MultibandExposure, box: Box2I) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Image, variance, mask and an on-exposure flag on ``box``, zero where it leaves the exposure.

    Parameters
    ----------
    mExposure : `~lsst.meas.extensions.madness.afw.exposure.MultibandExposure`
        The exposure to cut from.
    box : `~lsst.meas.extensions.madness.afw.geom.Box2I`
        The region, in the exposure's pixel coordinates; it may reach beyond the exposure.

    Returns
    -------
    image, variance : `numpy.ndarray`
        (bands, H, W) float64, the box's height and width; 0 off the exposure.
    mask : `numpy.ndarray`
        (bands, H, W) int64 mask bits; 0 off the exposure.
    inside : `numpy.ndarray`
        (bands, H, W) booleans: True on the exposure.

    Examples
    --------
    >>> import numpy as np
    >>> from lsst.meas.extensions.madness.afw import (Box2I, Extent2I, Footprint, MultibandExposure, Point2I,
    ...     SpanSet)
    >>> image = np.ones((2, 40, 40), np.float32)                     # bands g, r; 40×40 pixels from (100, 200)
    >>> mExp = MultibandExposure.fromArrays("gr", image, np.zeros(image.shape, np.int32), np.ones_like(image),
    ...                                     bbox=Box2I(Point2I(100, 200), Extent2I(40, 40)))
    >>> parent = Footprint(SpanSet(Box2I(Point2I(110, 210), Extent2I(10, 8))))
    >>> _ = parent.addPeak(113.3, 214.6, 10.0), parent.addPeak(117, 212, 5.0)
    >>> image, variance, mask, inside = canvasCutout(mExp, Box2I(Point2I(95, 195), Extent2I(10, 10)))
    >>> image.shape, int(inside[0].sum()), float(image.sum())          # a 5×5 corner lies on the exposure
    ((2, 10, 10), 25, 50.0)
    """
    nBands = len(mExposure.bands)
    shape = (nBands, box.getHeight(), box.getWidth())
    image, variance = np.zeros(shape, np.float64), np.zeros(shape, np.float64)
    mask, inside = np.zeros(shape, np.int64), np.zeros(shape, bool)
    overlap = box.clippedTo(mExposure.getBBox())
    if overlap.isEmpty():
        return image, variance, mask, inside
    x0, y0 = mExposure.getXY0()
    src = (slice(None), slice(overlap.getMinY() - y0, overlap.getEndY() - y0),
           slice(overlap.getMinX() - x0, overlap.getEndX() - x0))
    dst = (slice(None), slice(overlap.getMinY() - box.getMinY(), overlap.getEndY() - box.getMinY()),
           slice(overlap.getMinX() - box.getMinX(), overlap.getEndX() - box.getMinX()))
    image[dst] = mExposure.image.array[src]
    variance[dst] = mExposure.variance.array[src]
    mask[dst] = mExposure.mask.array[src]
    inside[dst] = True
    return image, variance, mask, inside


def parentPixelMap(mExposure: MultibandExposure, footprints: Sequence[Footprint]) -> np.ndarray:
    """(H, W) booleans over the exposure: True on the pixels of any of ``footprints``.

    Parameters
    ----------
    mExposure : `~lsst.meas.extensions.madness.afw.exposure.MultibandExposure`
        The exposure whose bounding box the map covers.
    footprints : sequence of `~lsst.meas.extensions.madness.afw.detection.Footprint`
        Every parent footprint of the exposure (their pixels beyond the exposure are dropped).

    Returns
    -------
    pixels : `numpy.ndarray`
        (H, W) booleans, array index ``[y - y0, x - x0]``: the ``parentPixels`` of :func:`makeBlend`.

    Examples
    --------
    >>> import numpy as np
    >>> from lsst.meas.extensions.madness.afw import (Box2I, Extent2I, Footprint, MultibandExposure, Point2I,
    ...     SpanSet)
    >>> image = np.ones((2, 40, 40), np.float32)                     # bands g, r; 40×40 pixels from (100, 200)
    >>> mExp = MultibandExposure.fromArrays("gr", image, np.zeros(image.shape, np.int32), np.ones_like(image),
    ...                                     bbox=Box2I(Point2I(100, 200), Extent2I(40, 40)))
    >>> parent = Footprint(SpanSet(Box2I(Point2I(110, 210), Extent2I(10, 8))))
    >>> _ = parent.addPeak(113.3, 214.6, 10.0), parent.addPeak(117, 212, 5.0)
    >>> pixels = parentPixelMap(mExp, [parent])
    >>> pixels.shape, int(pixels.sum()), bool(pixels[210 - 200, 110 - 100])
    ((40, 40), 80, True)
    """
    bbox = mExposure.getBBox()
    x0, y0 = mExposure.getXY0()
    pixels = np.zeros((bbox.getHeight(), bbox.getWidth()), bool)
    for footprint in footprints:
        spans = footprint.getSpans().clippedTo(bbox)
        if not spans.isEmpty():
            ys, xs = spans.indices()
            pixels[ys - y0, xs - x0] = True
    return pixels


def makeBlend(mExposure: MultibandExposure, footprint: Footprint, stampSize: int = 45,
              badMaskPlanes: Sequence[str] = DEFAULT_BAD_MASK_PLANES, footprintOnly: bool = True,
              scales: Sequence[float] | np.ndarray | None = None, parentPixels: np.ndarray | None = None) -> Blend:
    """Cut the canvas, weights, stamp corners and encoder cutouts of one parent (see module docs).

    Parameters
    ----------
    mExposure : `~lsst.meas.extensions.madness.afw.exposure.MultibandExposure`
        The exposure, in the bands and order of the deblender (:func:`withoutData` adds missing ones).
    footprint : `~lsst.meas.extensions.madness.afw.detection.Footprint`
        The parent's footprint, with one peak per galaxy; every peak lies on it.
    stampSize : `int`, optional
        Side S of each galaxy's stamp, in the exposure's pixels (the models' stamp size, or
        :func:`~.fit.blendStampSize` on other pixel scales).
    badMaskPlanes : sequence of `str`, optional
        Mask planes whose pixels get zero weight (planes the mask lacks are ignored).
    footprintOnly : `bool`, optional
        Give zero weight to every pixel off the footprint; if False only to the other parents' pixels
        (``parentPixels``), so that the undetected sky around the parent counts.
    scales : sequence of `float` or `numpy.ndarray`, optional
        Per band, the deblender's pixel units per unit of the exposure's (:mod:`.calibration`): they
        multiply the data and cutouts and divide the weights by their square; None: all 1.
    parentPixels : `numpy.ndarray`, optional
        (H, W) booleans over the exposure, :func:`parentPixelMap` of every parent: the other
        parents' pixels are zero in the encoder cutouts, and of zero weight when ``footprintOnly`` is
        False; None: no other parents.

    Returns
    -------
    blend : `Blend`
        The canvas box, data and weights (bands, H, W) in the deblender's units, the peak ids, stamp
        corners ``rows``/``cols`` (K,), sub-pixel offsets (K, 2), encoder cutouts (K, bands, S, S),
        the exposure's mask and variance on the canvas, the PSF images at the parent's centre, the
        scales and the pixel scale in arcsec.

    Raises
    ------
    ValueError
        If the footprint has no peaks or no pixels, or a peak is not finite or off the footprint, or
        ``scales`` is not one positive number per band.

    Examples
    --------
    >>> import numpy as np
    >>> from lsst.meas.extensions.madness.afw import (Box2I, Extent2I, Footprint, MultibandExposure, Point2I,
    ...     SpanSet)
    >>> image = np.ones((2, 40, 40), np.float32)                     # bands g, r; 40×40 pixels from (100, 200)
    >>> mExp = MultibandExposure.fromArrays("gr", image, np.zeros(image.shape, np.int32), np.ones_like(image),
    ...                                     bbox=Box2I(Point2I(100, 200), Extent2I(40, 40)))
    >>> parent = Footprint(SpanSet(Box2I(Point2I(110, 210), Extent2I(10, 8))))
    >>> _ = parent.addPeak(113.3, 214.6, 10.0), parent.addPeak(117, 212, 5.0)
    >>> blend = makeBlend(mExp, parent, stampSize=11)
    >>> blend.canvasBox.getMinX(), blend.canvasBox.getMinY(), blend.data.shape, blend.cutouts.shape
    (105, 205, (2, 18, 20), (2, 2, 11, 11))
    >>> blend.rows.tolist(), blend.cols.tolist(), blend.subpixel.round(2).tolist()
    ([5, 2], [3, 7], [[-0.4, 0.3], [0.0, 0.0]])
    >>> float(blend.weight[0].sum()), float(makeBlend(mExp, parent, 11, footprintOnly=False).weight[0].sum())
    (80.0, 360.0)
    """
    peaks = list(footprint.getPeaks())
    if not peaks:
        raise ValueError("the parent footprint has no peaks")
    spans = footprint.getSpans()
    if spans.isEmpty():
        raise ValueError("the parent footprint has no pixels")
    half = stampSize // 2
    bbox = spans.getBBox()
    canvasBox = Box2I(Point2I(bbox.getMinX() - half, bbox.getMinY() - half),
                      Extent2I(bbox.getWidth() + 2 * half, bbox.getHeight() + 2 * half))
    image, variance, mask, inside = canvasCutout(mExposure, canvasBox)
    known = set(mExposure.mask.getMaskPlaneDict())
    bits = mExposure.mask.getPlaneBitMask([p for p in badMaskPlanes if p in known]) if badMaskPlanes else 0
    good = inside & np.isfinite(image) & np.isfinite(variance) & (variance > 0) & ((mask & bits) == 0)
    own = spans.asArray(canvasBox).astype(bool)
    others = np.zeros_like(own)  # the pixels of the other parents' footprints
    if parentPixels is not None:
        overlap = canvasBox.clippedTo(mExposure.getBBox())
        if not overlap.isEmpty():
            x0, y0 = mExposure.getXY0()
            others[overlap.getMinY() - canvasBox.getMinY():overlap.getEndY() - canvasBox.getMinY(),
                   overlap.getMinX() - canvasBox.getMinX():overlap.getEndX() - canvasBox.getMinX()] = \
                parentPixels[overlap.getMinY() - y0:overlap.getEndY() - y0,
                             overlap.getMinX() - x0:overlap.getEndX() - x0]
        others &= ~own
    good &= own[None] if footprintOnly else ~others[None]
    weight = np.where(good, 1.0 / np.where(good, variance, 1.0), 0.0)
    data = np.where(inside & np.isfinite(image), image, 0.0)
    if scales is not None:
        scales = np.asarray(scales, dtype=np.float64)
        if scales.shape != (len(mExposure.bands),) or not (np.isfinite(scales).all() and (scales > 0).all()):
            raise ValueError(f"scales must be one positive number per band ({len(mExposure.bands)}), got {scales}")
        if (scales != 1.0).any():
            data = data * scales[:, None, None]
            weight = weight / scales[:, None, None] ** 2

    positions = np.array([[p.getFy(), p.getFx()] for p in peaks], np.float64)
    inFootprint = spans.asArray(bbox).astype(bool)
    for peak, (y, x) in zip(peaks, positions):
        if not np.isfinite([y, x]).all():
            raise ValueError(f"peak {peak.getId()} has a non-finite position (x={x}, y={y})")
        iy, ix = int(np.floor(y + 0.5)) - bbox.getMinY(), int(np.floor(x + 0.5)) - bbox.getMinX()
        if not (0 <= iy < bbox.getHeight() and 0 <= ix < bbox.getWidth() and inFootprint[iy, ix]):
            raise ValueError(f"peak {peak.getId()} at (x={x:g}, y={y:g}) lies outside the parent footprint")
    centres = np.floor(positions + 0.5).astype(np.int64)  # round half up, as pixel centres are integers
    rows = centres[:, 0] - half - canvasBox.getMinY()
    cols = centres[:, 1] - half - canvasBox.getMinX()
    cutouts = np.zeros((len(peaks), len(mExposure.bands), stampSize, stampSize))
    # The encoder sees this parent and the sky around it, not another parent's light: a bright
    # neighbour in the cutout would start the galaxy many times too bright, far from the fit's optimum.
    seen = np.where(others[None], 0.0, data)
    for k, (row, col) in enumerate(zip(rows, cols)):
        cutouts[k] = seen[:, row:row + stampSize, col:col + stampSize]
    psfs = mExposure.getPsfs()
    centre = Point2D((bbox.getMinX() + bbox.getMaxX()) / 2.0, (bbox.getMinY() + bbox.getMaxY()) / 2.0)
    psfImages = None if any(p is None for p in psfs) else [p.computeKernelImage(centre).array for p in psfs
                                                          if p is not None]
    pixelScale = mExposure.getPixelScale()
    return Blend(canvasBox, data, weight, [int(p.getId()) for p in peaks], rows, cols, positions - centres, cutouts,
                 mask.astype(np.int32), variance, psfImages, scales,
                 None if pixelScale is None else pixelScale.asArcseconds())


def stackBlends(blends: Sequence[Blend]) -> dict[str, np.ndarray]:
    """Arrays of a batch: canvases padded (up and right) to the largest, peaks padded to the largest K.

    Parameters
    ----------
    blends : sequence of `Blend`
        B blends with the same bands and stamp size.

    Returns
    -------
    arrays : `dict` [`str`, `numpy.ndarray`]
        ``data`` and ``weight`` (B, bands, H, W; padding has zero weight), ``rows``,
        ``cols`` (B, K) int64, ``present`` (B, K) booleans, ``cutouts`` (B, K, bands, S, S) and
        ``subpixel`` (B, K, 2), with H, W the largest canvas and K the largest number of peaks.

    Raises
    ------
    ValueError
        If ``blends`` is empty.

    Examples
    --------
    >>> import numpy as np
    >>> from lsst.meas.extensions.madness.afw import (Box2I, Extent2I, Footprint, MultibandExposure, Point2I,
    ...     SpanSet)
    >>> image = np.ones((2, 40, 40), np.float32)                     # bands g, r; 40×40 pixels from (100, 200)
    >>> mExp = MultibandExposure.fromArrays("gr", image, np.zeros(image.shape, np.int32), np.ones_like(image),
    ...                                     bbox=Box2I(Point2I(100, 200), Extent2I(40, 40)))
    >>> parent = Footprint(SpanSet(Box2I(Point2I(110, 210), Extent2I(10, 8))))
    >>> _ = parent.addPeak(113.3, 214.6, 10.0), parent.addPeak(117, 212, 5.0)
    >>> other = Footprint(SpanSet(Box2I(Point2I(125, 210), Extent2I(5, 5))))
    >>> _ = other.addPeak(127, 212, 1.0)
    >>> arrays = stackBlends([makeBlend(mExp, parent, 11), makeBlend(mExp, other, 11)])
    >>> arrays["data"].shape, arrays["cutouts"].shape, arrays["present"].tolist()
    ((2, 2, 18, 20), (2, 2, 2, 11, 11), [[True, True], [True, False]])
    """
    if not blends:
        raise ValueError("no blends to stack")
    nBands, stampSize = blends[0].data.shape[0], blends[0].cutouts.shape[-1]
    height = max(b.data.shape[1] for b in blends)
    width = max(b.data.shape[2] for b in blends)
    k = max(b.nPeaks for b in blends)
    n = len(blends)
    out = {
        "data": np.zeros((n, nBands, height, width)), "weight": np.zeros((n, nBands, height, width)),
        "rows": np.zeros((n, k), np.int64), "cols": np.zeros((n, k), np.int64), "present": np.zeros((n, k), bool),
        "cutouts": np.zeros((n, k, nBands, stampSize, stampSize)), "subpixel": np.zeros((n, k, 2)),
    }
    for i, blend in enumerate(blends):
        _, h, w = blend.data.shape
        out["data"][i, :, :h, :w] = blend.data
        out["weight"][i, :, :h, :w] = blend.weight
        out["rows"][i, :blend.nPeaks] = blend.rows
        out["cols"][i, :blend.nPeaks] = blend.cols
        out["present"][i, :blend.nPeaks] = True
        out["cutouts"][i, :blend.nPeaks] = blend.cutouts
        out["subpixel"][i, :blend.nPeaks] = blend.subpixel
    return out
