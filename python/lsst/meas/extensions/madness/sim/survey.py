r"""Survey observing conditions: per-band zero point, sky, PSF and exposure time.

The defaults are the LSST 10-year coadd conditions of the MADNESS paper's Table 1, which
equal ``surveycodex`` 1.2.0. The table is carried here rather than read from
``surveycodex``, whose 1.3.0 release shifts every zero point by +0.03 mag; carrying it keeps
simulations identical to the paper's whatever ``surveycodex`` is installed.

With zero point :math:`m_0` (the magnitude giving 1 electron per second) and exposure time
:math:`t`, a source of AB magnitude :math:`m` yields

.. math:: N_e = t \, 10^{-0.4 (m - m_0)}

electrons (gain 1), and the sky per pixel is :math:`N_e(m_\mathrm{sky}) \, s^2` for pixel
scale :math:`s` arcsec.

References
----------
Biswas et al. 2025, A&A, "MADNESS deblender", Table 1.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["BandConditions", "SurveyConditions", "LSST_CONDITIONS", "SIMULATED_FIELD_CENTRE"]

#: Where simulated images lie on the sky (right ascension, declination in degrees: the COSMOS field).
SIMULATED_FIELD_CENTRE = (150.1, 2.2)


class BandConditions(BaseModel):
    """Observing conditions of one band."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    zeroPoint: float = Field(description="AB magnitude that gives 1 electron per second.")
    skyBrightness: float = Field(description="Sky surface brightness, AB mag per square arcsec.")
    psfFwhm: float = Field(gt=0, description="FWHM of the (Kolmogorov) PSF, arcsec.")
    exposureTime: float = Field(gt=0, description="Total exposure time of the coadd, seconds.")
    effectiveWavelength: float = Field(gt=0, description="Effective wavelength of the band, nm.")

    def electrons(self, magnitude: float) -> float:
        """Electrons collected from a source of AB ``magnitude`` (gain 1)."""
        return self.exposureTime * 10.0 ** (-0.4 * (magnitude - self.zeroPoint))

    def magnitude(self, electrons: float) -> float:
        """The AB magnitude of a source giving ``electrons`` (inverse of :meth:`electrons`)."""
        return self.zeroPoint - 2.5 * math.log10(electrons / self.exposureTime)


class SurveyConditions(BaseModel):
    """Conditions of a survey: bands in order, pixel scale and gain.

    Another survey or another depth is another instance, not new code.

    Examples
    --------
    >>> round(LSST_CONDITIONS.skyPerPixel("r"))
    127057
    >>> LSST_CONDITIONS.bandNames
    ('u', 'g', 'r', 'i', 'z', 'y')
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(description="Survey name.")
    pixelScale: float = Field(gt=0, description="Pixel side, arcsec.")
    gain: float = Field(gt=0, description="Electrons per ADU; images are in electrons when 1.")
    bands: dict[str, BandConditions] = Field(description="Conditions per band, in band order.")

    @model_validator(mode="after")
    def _checkBands(self) -> SurveyConditions:
        if not self.bands:
            raise ValueError("a survey needs at least one band")
        return self

    @property
    def bandNames(self) -> tuple[str, ...]:
        return tuple(self.bands)

    def band(self, name: str) -> BandConditions:
        try:
            return self.bands[name]
        except KeyError:
            raise KeyError(f"survey {self.name!r} has no band {name!r}; bands: {self.bandNames}") from None

    def skyPerPixel(self, band: str) -> float:
        """Mean sky level per pixel in electrons."""
        conditions = self.band(band)
        return conditions.electrons(conditions.skyBrightness) * self.pixelScale**2

    def electrons(self, band: str, magnitude: float) -> float:
        return self.band(band).electrons(magnitude)

    def photoCalib(self, band: str):
        r"""The calibration of this survey's coadd images (ADU: electrons over the gain) in ``band``.

        One electron is :math:`3631\cdot10^{9}\,10^{-0.4 m_0}/t` nJy, as
        :func:`~.trainingStamps.nJyPerElectron` computes it; one ADU is ``gain`` electrons.

        Examples
        --------
        >>> calib = LSST_CONDITIONS.photoCalib("r")
        >>> round(calib.getCalibrationMean(), 6), round(calib.instFluxToMagnitude(1.0), 3)
        (0.003785, 37.455)
        """
        from ..afw.photoCalib import REFERENCE_FLUX_NJY, PhotoCalib

        b = self.band(band)
        return PhotoCalib(REFERENCE_FLUX_NJY * 10.0 ** (-0.4 * b.zeroPoint) / b.exposureTime * self.gain)

    def skyWcs(self, bbox, centre: tuple[float, float] = SIMULATED_FIELD_CENTRE):
        """A tangent-plane WCS of this survey's pixel scale for an image on ``bbox`` (a ``Box2I``): north up,
        east left, the box's centre at ``centre`` (degrees).

        Examples
        --------
        >>> from lsst.meas.extensions.madness.afw import Box2I, Extent2I, Point2I
        >>> wcs = LSST_CONDITIONS.skyWcs(Box2I(Point2I(0, 0), Extent2I(101, 101)))
        >>> sky = wcs.pixelToSky(50.0, 50.0)
        >>> round(sky.getRa().asDegrees(), 9), round(wcs.getPixelScale().asArcseconds(), 9)
        (150.1, 0.2)
        """
        import numpy as np

        from ..afw.geom import Point2D, SpherePoint, arcseconds, degrees
        from ..afw.skyWcs import makeSkyWcs

        scale = (self.pixelScale * arcseconds).asDegrees()
        middle = Point2D((bbox.getMinX() + bbox.getMaxX()) / 2.0, (bbox.getMinY() + bbox.getMaxY()) / 2.0)
        return makeSkyWcs(middle, SpherePoint(*centre, degrees), np.array([[-scale, 0.0], [0.0, scale]]))


LSST_CONDITIONS = SurveyConditions(
    name="LSST",
    pixelScale=0.2,
    gain=1.0,
    bands={
        "u": BandConditions(zeroPoint=26.40, skyBrightness=22.99, psfFwhm=0.90, exposureTime=1680,
                            effectiveWavelength=368.1),
        "g": BandConditions(zeroPoint=28.26, skyBrightness=22.26, psfFwhm=0.86, exposureTime=2400,
                            effectiveWavelength=486.4),
        "r": BandConditions(zeroPoint=28.10, skyBrightness=21.20, psfFwhm=0.81, exposureTime=5520,
                            effectiveWavelength=625.0),
        "i": BandConditions(zeroPoint=27.78, skyBrightness=20.48, psfFwhm=0.79, exposureTime=5520,
                            effectiveWavelength=756.5),
        "z": BandConditions(zeroPoint=27.39, skyBrightness=19.60, psfFwhm=0.77, exposureTime=4800,
                            effectiveWavelength=870.2),
        "y": BandConditions(zeroPoint=26.56, skyBrightness=18.61, psfFwhm=0.76, exposureTime=4800,
                            effectiveWavelength=972.2),
    },
)
