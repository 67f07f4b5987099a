r"""Photometric calibration, named as in ``lsst.afw.image``: :class:`PhotoCalib`.

A calibration turns an exposure's pixel values ("instrumental flux", counts) into physical
fluxes in nanojansky, as afw's does since the nJy redefinition:

.. math:: F_{\rm nJy} = c\, F_{\rm inst}, \qquad m_{\rm AB} = -2.5 \log_{10}(F_{\rm nJy} / 3631\cdot10^{9}),

with :math:`c` the calibration mean (nJy per count). An exposure already in nJy (LSST's
coadds) has :math:`c = 1`; one whose count of :math:`10^{0.4 m_0}` is AB magnitude 0 (a
zero point :math:`m_0`, FITS ``MAGZERO``) has :math:`c = 3631\cdot10^{9}\,10^{-0.4 m_0}`.
Only spatially constant calibrations are modelled.
"""

from __future__ import annotations

import math

import numpy as np

from .geom import Box2I

__all__ = ["REFERENCE_FLUX_NJY", "PhotoCalib", "makePhotoCalibFromCalibZeroPoint"]

#: The AB reference flux, 3631 Jy, in nJy: an AB magnitude of 0.
REFERENCE_FLUX_NJY = 3631e9


class PhotoCalib:
    """A spatially constant photometric calibration: ``calibrationMean`` nJy per count.

    Parameters
    ----------
    calibrationMean
        nJy of one count (of one unit of the exposure's pixels); positive and finite.
    calibrationErr
        Its uncertainty (kept, not propagated).
    bbox
        The box the calibration is valid on (kept for afw compatibility).

    Raises
    ------
    ValueError
        If ``calibrationMean`` is not positive and finite, or ``calibrationErr`` is negative.

    Examples
    --------
    >>> calib = makePhotoCalibFromCalibZeroPoint(10 ** (0.4 * 27.0))
    >>> round(calib.getCalibrationMean(), 3), round(calib.instFluxToMagnitude(1.0), 6)
    (57.547, 27.0)
    >>> round(calib.instFluxToNanojansky(100.0), 1), round(calib.nanojanskyToInstFlux(57547.47), 2)
    (5754.7, 1000.0)
    >>> PhotoCalib(1.0).instFluxToNanojansky(3.5)  # an exposure in nJy
    3.5
    """

    def __init__(self, calibrationMean: float, calibrationErr: float = 0.0, bbox: Box2I | None = None):
        calibrationMean, calibrationErr = float(calibrationMean), float(calibrationErr)
        if not (math.isfinite(calibrationMean) and calibrationMean > 0):
            raise ValueError(f"PhotoCalib calibrationMean must be positive and finite (nJy per count), "
                             f"got {calibrationMean}")
        if not calibrationErr >= 0:
            raise ValueError(f"PhotoCalib calibrationErr must be non-negative, got {calibrationErr}")
        self._mean = calibrationMean
        self._err = calibrationErr
        self._bbox = bbox

    def getCalibrationMean(self) -> float:
        """nJy per count."""
        return self._mean

    def getCalibrationErr(self) -> float:
        return self._err

    def getBBox(self) -> Box2I | None:
        return self._bbox

    def isSpatiallyConstant(self) -> bool:
        return True

    def getInstFluxAtZeroMagnitude(self) -> float:
        """Counts of a source of AB magnitude 0."""
        return REFERENCE_FLUX_NJY / self._mean

    def instFluxToNanojansky(self, instFlux, point=None):
        """Counts to nJy (``point`` is accepted as afw's and ignored: the calibration is constant)."""
        return self._mean * _asNumber(instFlux)

    def nanojanskyToInstFlux(self, nanojansky, point=None):
        """nJy to counts."""
        return _asNumber(nanojansky) / self._mean

    def instFluxToMagnitude(self, instFlux, point=None):
        """Counts to AB magnitude."""
        return _asNumber(-2.5 * np.log10(self.instFluxToNanojansky(instFlux) / REFERENCE_FLUX_NJY) + 0.0)

    def magnitudeToInstFlux(self, magnitude, point=None):
        """AB magnitude to counts."""
        return self.nanojanskyToInstFlux(REFERENCE_FLUX_NJY * 10.0 ** (-0.4 * _asNumber(magnitude)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PhotoCalib):
            return NotImplemented
        return self._mean == other._mean and self._err == other._err

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PhotoCalib(calibrationMean={self._mean!r}, calibrationErr={self._err!r})"


def _asNumber(value):
    """A float for a scalar, a float64 array otherwise."""
    array = np.asarray(value, dtype=np.float64)
    return float(array) if array.ndim == 0 else array


def makePhotoCalibFromCalibZeroPoint(instFluxMag0: float, instFluxMag0Err: float = 0.0) -> PhotoCalib:
    """The calibration in which ``instFluxMag0`` counts are AB magnitude 0 (afw's function of that name).

    A FITS zero point ``MAGZERO`` (the AB magnitude of one count) is ``instFluxMag0 = 10**(0.4 * MAGZERO)``.
    """
    instFluxMag0 = float(instFluxMag0)
    if not (math.isfinite(instFluxMag0) and instFluxMag0 > 0):
        raise ValueError(f"instFluxMag0 must be positive and finite, got {instFluxMag0}")
    mean = REFERENCE_FLUX_NJY / instFluxMag0
    return PhotoCalib(mean, REFERENCE_FLUX_NJY * float(instFluxMag0Err) / instFluxMag0**2)
