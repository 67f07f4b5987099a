r"""Pixel units: from the exposure's calibration to the deblender's, and the children's fluxes in nJy.

An exposure says what its pixels are (each band's :class:`~lsst.meas.extensions.madness.afw.photoCalib.PhotoCalib`,
:math:`c_e` nJy per pixel unit: 1 for LSST's nJy coadds); a deblender works in the units it
was made for (:math:`c_d` nJy per unit: for the shipped MADNESS models, electrons of LSST's
10-year coadds, their card's ``surveyConditions``). The blends are cut in the deblender's
units, multiplying the pixels by

.. math:: s = c_e / c_d

in :func:`~.blends.makeBlend`, the one place where pixels change units, so an exposure in
nJy and the same exposure in counts with its zero point give the same children. Heavy
footprints go back to the exposure's units (LSST's convention), and every flux column is
converted to nJy with the exposure's calibration where the columns are filled.

A band without a calibration on one side takes the other side's: an exposure band without
a PhotoCalib is taken to be in the deblender's units (:math:`s = 1`), and a deblender with no
units of its own for a band works in the exposure's. A band with neither is refused
(:class:`MissingCalibrationError`): its fluxes could not be given in nJy. A band the exposure
lacks altogether (``absentBands``) has no flux: NaN, not a number the models invented.

Examples
--------
>>> import numpy as np
>>> from lsst.meas.extensions.madness.afw import MultibandExposure, PhotoCalib
>>> mExp = MultibandExposure.fromArrays("gr", np.zeros((2, 5, 5), np.float32),
...                                     photoCalibs=[PhotoCalib(1.0), PhotoCalib(2.0)])  # nJy; 2 nJy per count
>>> calibration = bandCalibration(mExp, [PhotoCalib(0.5), None])
>>> calibration.toDeblender.tolist(), calibration.instFluxToNanojansky(np.array([10.0, 10.0])).tolist()
([2.0, 1.0], [10.0, 20.0])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..afw.exposure import MultibandExposure
from ..afw.photoCalib import PhotoCalib

__all__ = ["MissingCalibrationError", "BandCalibration", "bandCalibration", "surveyPhotoCalibs"]

#: Scales within this of 1 are taken as 1: a calibration that went through MAGZERO's decimal digits
#: leaves the pixels bit for bit as they were.
UNIT_SCALE_TOLERANCE = 1e-12


class MissingCalibrationError(ValueError):
    """A band has no photometric calibration, on the exposure or in the deblender, so no flux in nJy."""


@dataclass(frozen=True)
class BandCalibration:
    """Each band's calibration (nJy per exposure pixel unit) and the factor to the deblender's units."""

    bands: tuple[str, ...]
    photoCalibs: tuple[PhotoCalib, ...]
    toDeblender: np.ndarray  # (bands,) deblender units per exposure unit
    absent: tuple[str, ...] = ()  # bands the exposure lacks: no flux

    def instFluxToNanojansky(self, instFluxes: np.ndarray) -> np.ndarray:
        """Fluxes ``(..., bands)`` in the exposure's pixel units to nJy (NaN in the absent bands).

        Parameters
        ----------
        instFluxes : `numpy.ndarray`
            (..., bands) fluxes in the exposure's pixel units, the bands last and in :attr:`bands` order.

        Returns
        -------
        fluxes : `numpy.ndarray`
            (..., bands) float64 fluxes in nJy; NaN in the bands of :attr:`absent`.

        Examples
        --------
        >>> import numpy as np
        >>> from lsst.meas.extensions.madness.afw import MultibandExposure, PhotoCalib
        >>> mExp = MultibandExposure.fromArrays("gr", np.zeros((2, 5, 5), np.float32),
        ...                                     photoCalibs=[PhotoCalib(1.0), PhotoCalib(2.0)])
        >>> calibration = bandCalibration(mExp, [None, None], absentBands=["r"])
        >>> calibration.instFluxToNanojansky(np.array([[10.0, 10.0]])).tolist()
        [[10.0, nan]]
        """
        instFluxes = np.asarray(instFluxes, dtype=np.float64)
        return np.stack([np.full_like(instFluxes[..., b], np.nan) if band in self.absent
                         else calib.instFluxToNanojansky(instFluxes[..., b])
                         for b, (band, calib) in enumerate(zip(self.bands, self.photoCalibs))], axis=-1)


def bandCalibration(mExposure: MultibandExposure, deblenderCalibs: Sequence[PhotoCalib | None],
                    absentBands: Sequence[str] = ()) -> BandCalibration:
    """The calibration of ``mExposure``'s bands against the deblender's own (one per band, or None);
    ``absentBands`` are those added without data (:func:`~.blends.withoutData`).

    Parameters
    ----------
    mExposure : `~lsst.meas.extensions.madness.afw.exposure.MultibandExposure`
        The exposure, in the deblender's bands; its per-band PhotoCalibs (None: in the deblender's units).
    deblenderCalibs : sequence of `~lsst.meas.extensions.madness.afw.photoCalib.PhotoCalib` or None
        The calibration of the deblender's pixel units, one per band of the exposure (None: the
        deblender works in the exposure's units in that band).
    absentBands : sequence of `str`, optional
        Bands the exposure lacked (added without data): their fluxes are NaN.

    Returns
    -------
    calibration : `BandCalibration`
        Per band, the calibration to nJy of the exposure's units and ``toDeblender``, the deblender's
        units per exposure unit (:math:`s = c_e / c_d`; exactly 1 within :data:`UNIT_SCALE_TOLERANCE`).

    Raises
    ------
    MissingCalibrationError
        If a band has no calibration on either side.
    ValueError
        If ``deblenderCalibs`` does not have one entry per band.

    Examples
    --------
    >>> import numpy as np
    >>> from lsst.meas.extensions.madness.afw import MultibandExposure, PhotoCalib
    >>> mExp = MultibandExposure.fromArrays("gr", np.zeros((2, 5, 5), np.float32),
    ...                                     photoCalibs=[PhotoCalib(1.0), PhotoCalib(2.0)])  # nJy; 2 nJy per count
    >>> bandCalibration(mExp, [PhotoCalib(0.5), None]).toDeblender.tolist()
    [2.0, 1.0]
    >>> uncalibrated = MultibandExposure.fromArrays("gr", np.zeros((2, 5, 5), np.float32))
    >>> bandCalibration(uncalibrated, [None, PhotoCalib(1.0)])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lsst.meas.extensions.madness.deblend.calibration.MissingCalibrationError: band(s) ['g'] of the exposure ...
    """
    bands = tuple(mExposure.bands)
    if len(deblenderCalibs) != len(bands):
        raise ValueError(f"{len(deblenderCalibs)} deblender calibrations for {len(bands)} bands")
    calibs, scales, missing = [], [], []
    for band, exposureCalib, deblenderCalib in zip(bands, mExposure.getPhotoCalibs(), deblenderCalibs):
        if exposureCalib is None and deblenderCalib is None:
            missing.append(band)
            continue
        calib = exposureCalib if exposureCalib is not None else deblenderCalib
        assert calib is not None  # not both None: that band is missing
        scale = 1.0
        if exposureCalib is not None and deblenderCalib is not None:
            scale = exposureCalib.getCalibrationMean() / deblenderCalib.getCalibrationMean()
            scale = 1.0 if abs(scale - 1.0) <= UNIT_SCALE_TOLERANCE else scale
        calibs.append(calib)
        scales.append(scale)
    if missing:
        raise MissingCalibrationError(
            f"band(s) {missing} of the exposure have no photometric calibration and the deblender has no units "
            "of its own for them, so their fluxes cannot be given in nJy: give the exposure a PhotoCalib per band "
            "(Exposure.setPhotoCalib, MultibandExposure.setAllPhotoCalibs; in files BUNIT = 'nJy' or MAGZERO)")
    return BandCalibration(bands, tuple(calibs), np.array(scales), tuple(absentBands))


def surveyPhotoCalibs(conditions, bands: Sequence[str]) -> list[PhotoCalib | None]:
    """The calibration of the coadd images of ``conditions`` (a
    :class:`~lsst.meas.extensions.madness.sim.survey.SurveyConditions`) in each of ``bands``; None for a
    band the survey does not have.

    Parameters
    ----------
    conditions : `~lsst.meas.extensions.madness.sim.survey.SurveyConditions`
        The survey (zero points and exposure times of its coadds), e.g. a model card's ``surveyConditions``.
    bands : sequence of `str`
        The bands wanted, in order.

    Returns
    -------
    photoCalibs : `list` [`~lsst.meas.extensions.madness.afw.photoCalib.PhotoCalib` or None]
        nJy per electron of the survey's coadd in each band; None for a band it does not have.

    Examples
    --------
    >>> from lsst.meas.extensions.madness.sim.survey import LSST_CONDITIONS
    >>> r, j = surveyPhotoCalibs(LSST_CONDITIONS, ["r", "J"])
    >>> round(r.getCalibrationMean(), 6), j
    (0.003785, None)
    """
    return [conditions.photoCalib(band) if band in conditions.bands else None for band in bands]
