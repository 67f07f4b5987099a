"""What a deblender found for one blend (:class:`BlendModel`) and for a whole exposure (:class:`ModelData`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from os import PathLike

import numpy as np

from ..afw.geom import Box2I, Extent2I, Point2I
from .footprints import ChildModels

__all__ = ["BlendModel", "ModelData", "NonFiniteModelError"]


class NonFiniteModelError(ArithmeticError):
    """A deblender returned a model with NaN or infinite values; its parent is failed, not written."""


@dataclass
class BlendModel:
    """The children's models of one blend, with the fit's diagnostics.

    ``method`` is the deblender that made it (``"madness"`` or ``"scarlet"``); a model made by a
    fallback deblender says why in ``fallbackReason``.
    """

    children: ChildModels
    iterations: int
    converged: bool
    runtime: float  # ms
    method: str
    logLikelihood: float = float("nan")
    logPrior: np.ndarray | None = None  # (K,), MADNESS only
    latents: np.ndarray | None = None  # (K, D), MADNESS only
    fallbackReason: str = ""
    timedOut: bool = False  # the fit ran out of its time budget before meeting its stopping rule
    fluxErr: np.ndarray | None = None  # (K, bands) Laplace σ of the children's fluxes, deblender units; MADNESS only
    shapes: np.ndarray | None = None  # (K, 4) r-band e1, e2, σ(e1), σ(e2) (deblend/uncertainty.py); MADNESS only
    uncertaintyRuntime: float = float("nan")  # ms spent on the uncertainties (part of ``runtime``'s batch)

    @property
    def finite(self) -> bool:
        """Whether the child images, the log-priors and the latents (where given) are all finite."""
        return bool(all(np.isfinite(image).all() for image in self.children.images)
                    and (self.logPrior is None or np.isfinite(self.logPrior).all())
                    and (self.latents is None or np.isfinite(self.latents).all()))


@dataclass
class ModelData:
    """The models of every deblended parent (``Struct.modelData`` of the deblend tasks).

    ``blends[parentId]`` is the parent's :class:`BlendModel`, whose child images lie on the canvas
    ``boxes[parentId]`` (exposure pixel coordinates), in the deblender's pixel units: divide them by
    ``toDeblender`` (per band; None: 1) for the exposure's (:mod:`.calibration`). Child ``k`` of a
    parent is the model of its footprint's peak ``k``: ``peakIds[parentId][k]``, the child record
    ``childIds[parentId][k]`` of the deblended catalogue (both filled by the deblend tasks).

    :meth:`renderChild` draws one child in the exposure's units; :meth:`writeFits` and
    :meth:`readFits` keep all of it in one file (:mod:`~lsst.meas.extensions.madness.io.modelDataFits`).

    Examples
    --------
    One parent (id 7) of two children (peaks 70 and 71) on a 3×3 canvas, in deblender units of half
    the exposure's:

    >>> import numpy as np, os, tempfile
    >>> from lsst.meas.extensions.madness.afw import Box2I, Extent2I, Point2I
    >>> from lsst.meas.extensions.madness.deblend import BlendModel, ChildModels
    >>> children = ChildModels([np.ones((1, 2, 2)), 2 * np.ones((1, 2, 2))], rows=np.array([0, 1]),
    ...                        cols=np.array([0, 1]))
    >>> data = ModelData(("r",), toDeblender=np.array([2.0]))
    >>> data.blends[7] = BlendModel(children, iterations=10, converged=True, runtime=1.0, method="madness")
    >>> data.boxes[7] = Box2I(Point2I(100, 200), Extent2I(3, 3))
    >>> data.peakIds[7] = [70, 71]
    >>> data.modelImage(7)[0].tolist()
    [[1.0, 1.0, 0.0], [1.0, 3.0, 2.0], [0.0, 2.0, 2.0]]
    >>> data.modelImage(7, exposureUnits=True)[0].tolist()
    [[0.5, 0.5, 0.0], [0.5, 1.5, 1.0], [0.0, 1.0, 1.0]]
    >>> data.childIndex(7, 71)
    1
    >>> stamp, box = data.childStamp(7, 71)
    >>> stamp[0].tolist(), (box.getMinX(), box.getMinY(), box.getWidth(), box.getHeight())
    ([[1.0, 1.0], [1.0, 1.0]], (101, 201, 2, 2))
    >>> data.renderChild(7, 71)[0].tolist()
    [[0.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 1.0, 1.0]]
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     data.writeFits(os.path.join(tmp, "modelData.fits"))
    ...     back = ModelData.readFits(os.path.join(tmp, "modelData.fits"))
    >>> len(back), back.renderChild(7, 70, Box2I(Point2I(100, 200), Extent2I(1, 1))).tolist()
    (1, [[[0.5]]])
    """

    bands: tuple[str, ...]
    blends: dict[int, BlendModel] = field(default_factory=dict)
    boxes: dict[int, Box2I] = field(default_factory=dict)
    toDeblender: np.ndarray | None = None
    peakIds: dict[int, list[int]] = field(default_factory=dict)
    childIds: dict[int, list[int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.blends)

    def _toExposure(self) -> np.ndarray:
        """Per band, the factor from the deblender's pixel units to the exposure's, shaped (bands, 1, 1)."""
        scale = np.ones(len(self.bands)) if self.toDeblender is None else np.asarray(self.toDeblender, np.float64)
        return (1.0 / scale)[:, None, None]

    def modelImage(self, parentId: int, exposureUnits: bool = False) -> np.ndarray:
        """Sum of the parent's children on its canvas ``boxes[parentId]``.

        Parameters
        ----------
        parentId
            The parent's id.
        exposureUnits
            Give it in the exposure's pixel units instead of the deblender's.

        Returns
        -------
        numpy.ndarray
            (bands, H, W), the canvas's height and width.
        """
        box = self.boxes[parentId]
        total = self.blends[parentId].children.total((len(self.bands), box.getHeight(), box.getWidth()))
        return total * self._toExposure() if exposureUnits else total

    def childIndex(self, parentId: int, peakId: int) -> int:
        """Index ``k`` in ``blends[parentId].children`` of the child of peak ``peakId``.

        Parameters
        ----------
        parentId
            The parent's id (a child record's ``getParent()``).
        peakId
            The peak's id (a child record's ``deblend_peakId``).

        Returns
        -------
        int
            The child's index ``k``: its peak's position in ``peakIds[parentId]``.

        Raises
        ------
        KeyError
            If the parent has no model, or no peak ``peakId``.
        """
        if parentId not in self.blends:
            raise KeyError(f"parent {parentId} has no model (skipped, failed, isolated, or not in this exposure)")
        peaks = self.peakIds.get(parentId)
        if peaks is None:
            raise KeyError(f"the peak ids of parent {parentId} were not recorded")
        try:
            return list(peaks).index(peakId)
        except ValueError:
            raise KeyError(f"parent {parentId} has no peak {peakId}; its peaks are {list(peaks)}") from None

    def childStamp(self, parentId: int, peakId: int) -> tuple[np.ndarray, Box2I]:
        """The child's own model stamp, in the exposure's pixel units, and where it lies.

        Parameters
        ----------
        parentId
            The parent's id.
        peakId
            The peak's id.

        Returns
        -------
        stamp : numpy.ndarray
            (bands, h, w) float64.
        box : Box2I
            The stamp's box in the exposure's pixel coordinates.
        """
        k = self.childIndex(parentId, peakId)
        children = self.blends[parentId].children
        canvas = self.boxes[parentId]
        image = children.images[k]
        corner = Point2I(canvas.getMinX() + int(children.cols[k]), canvas.getMinY() + int(children.rows[k]))
        box = Box2I(corner, Extent2I(image.shape[-1], image.shape[-2]))
        return np.asarray(image, np.float64) * self._toExposure(), box

    def renderChild(self, parentId: int, peakId: int, bbox: Box2I | None = None) -> np.ndarray:
        """The full model of one child, in the exposure's pixel units, drawn on a box.

        A child of the deblended catalogue is ``renderChild(child.getParent(), child.get("deblend_peakId"))``.
        The model is the deblender's own (its flux is the child's ``madness_flux_<band>`` in the
        exposure's units), not the heavy footprint, which is cut at the footprint threshold and,
        with ``conserveFlux``, shares the data instead.

        Parameters
        ----------
        parentId
            The parent's id.
        peakId
            The child's peak id.
        bbox
            Where to draw it, in the exposure's pixel coordinates (default: the parent's canvas,
            ``boxes[parentId]``); the parts of the stamp outside it are cut, pixels it does not reach are 0.

        Returns
        -------
        numpy.ndarray
            (bands, height, width) of ``bbox``, float64.
        """
        stamp, box = self.childStamp(parentId, peakId)
        bbox = self.boxes[parentId] if bbox is None else bbox
        image = np.zeros((len(self.bands), bbox.getHeight(), bbox.getWidth()))
        x0, y0 = max(box.getMinX(), bbox.getMinX()), max(box.getMinY(), bbox.getMinY())
        x1, y1 = min(box.getMaxX(), bbox.getMaxX()) + 1, min(box.getMaxY(), bbox.getMaxY()) + 1
        if x1 > x0 and y1 > y0:
            image[:, y0 - bbox.getMinY():y1 - bbox.getMinY(), x0 - bbox.getMinX():x1 - bbox.getMinX()] = \
                stamp[:, y0 - box.getMinY():y1 - box.getMinY(), x0 - box.getMinX():x1 - box.getMinX()]
        return image

    def writeFits(self, path: str | PathLike) -> None:
        """Write the package's model-data FITS file (:mod:`~lsst.meas.extensions.madness.io.modelDataFits`).

        Parameters
        ----------
        path
            The file (written atomically; overwritten).
        """
        from ..io.modelDataFits import writeModelDataFits

        writeModelDataFits(self, path)

    @classmethod
    def readFits(cls, path: str | PathLike) -> ModelData:
        """Read a file written by :meth:`writeFits`.

        Parameters
        ----------
        path
            The file.

        Returns
        -------
        ModelData
            The models, boxes, unit factors and ids as written.

        Raises
        ------
        FitsFormatError
            If the file is not a model-data file, naming the file, extension, column and row.
        """
        from ..io.modelDataFits import readModelDataFits

        return readModelDataFits(path)
