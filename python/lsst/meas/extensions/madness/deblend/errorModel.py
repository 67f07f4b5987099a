r"""The catalogue's flux and shape errors: the Laplace σ plus what it cannot know.

The Laplace σ (:mod:`.uncertainty`) is the width of the posterior *if the models were right*: it
knows the pixel noise and the prior, not how well the VAE can draw the galaxy, not a neighbour's
light the fit gave to the wrong child, and not the non-Gaussian shape of the posterior of a faint
galaxy's ellipticity. On the benchmark it is too small by 1.5 for typical children and by factors
of tens for bright ones and for children blended with a poorly fitted neighbour
(``doc/madness-deblend.md``). :class:`ErrorModel` adds those terms, each a physical quantity the
catalogue already holds:

.. math::

    \sigma_F^2 &= \max(1, \chi^2_\nu)\,\big[a_F^2\,\sigma_{F,L}^2 + (f_F\,F)^2 + (c_F\,\beta\,F)^2\big], \\
    \sigma_e^2 &= \max(1, \chi^2_\nu)\,\big[a_e^2\,\sigma_{e,L}^2 + f_e^2 + (c_e\,\beta)^2 + (k_e / \nu)^2\big],

with :math:`\sigma_{\cdot,L}` the Laplace σ, :math:`F` the child's flux,
:math:`\chi^2_\nu` the reduced χ² over its footprint (``deblend_chi2``), :math:`\beta` its blendedness
(``deblend_blendedness``: the share of the light under its profile that belongs to its neighbours)
and :math:`\nu = |F_r| / \sigma_{F_r,L}` its r-band S/N by the Laplace σ.

- :math:`a` scales the Laplace σ (the flow's curvature at the MAP narrows it).
- :math:`f` is the models' own error (a fractional flux error, an e1 error), which dominates
  bright galaxies.
- :math:`c\,\beta` is the error of sharing light with neighbours, which grows with the share.
- :math:`k/\nu` is the shape noise of a faint galaxy, whose posterior in e is wider than its
  curvature at the MAP says (the prior pulls the MAP towards round shapes); the adaptive-moment
  ellipticity's noise scales as :math:`1/\nu` (Bernstein & Jarvis 2002).
- :math:`\max(1, \chi^2_\nu)` inflates the whole error where the model does not fit the data (the
  Birge ratio): a child drawn from a misfit is as uncertain as the misfit is large, whatever the
  term that sized it.

The coefficients are chosen on simulated fields by ``madness-bench pulls``, never on the fields
its report shows; the task's ``fluxErr*`` and ``shapeErr*`` config fields hold them.

References
----------
Birge 1932, Phys. Rev. 40, 207 (inflating errors by the reduced χ²);
Bernstein & Jarvis 2002, AJ 123, 583 (the noise of ellipticities, Sec. 3);
Bosch et al. 2018, PASJ 70, S5, Sec. 4.9.11 (blendedness).

Examples
--------
>>> import numpy as np
>>> model = ErrorModel(fluxScale=2.0, fluxFloor=0.1)
>>> model.fluxErr(np.array([3.0]), np.array([40.0]), chi2=np.array([1.0]), blendedness=np.array([0.0])).tolist()
[7.211102550927978]
>>> ErrorModel(chi2Inflation=True).fluxErr(np.array([3.0]), np.array([40.0]), chi2=np.array([4.0]),
...                                     blendedness=np.array([0.5])).tolist()
[6.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["CONFIG_FIELDS", "ErrorModel"]

#: Each :class:`ErrorModel` field and the ``MadnessDeblendConfig`` field that holds it.
CONFIG_FIELDS = {"fluxScale": "fluxErrScale", "fluxFloor": "fluxErrFloor", "fluxBlendedness": "fluxErrBlendedness",
                 "shapeScale": "shapeErrScale", "shapeFloor": "shapeErrFloor",
                 "shapeBlendedness": "shapeErrBlendedness", "shapeNoise": "shapeErrNoise",
                 "chi2Inflation": "errChi2Inflation"}


def _inflation(chi2: npt.ArrayLike) -> np.ndarray:
    # A footprint without a χ² (no weighted pixel) gets no inflation: there is no misfit to count.
    return np.sqrt(np.fmax(np.nan_to_num(np.asarray(chi2, dtype=float), nan=1.0), 1.0))


def _share(blendedness: npt.ArrayLike) -> np.ndarray:
    # Rounding makes an isolated child's blendedness -1e-7; a zero model has none (NaN): no neighbours' light.
    return np.clip(np.nan_to_num(np.asarray(blendedness, dtype=float), nan=0.0), 0.0, 1.0)


@dataclass(frozen=True)
class ErrorModel:
    """The terms that turn Laplace σ into catalogue errors (module docstring); the defaults give the
    Laplace σ alone.

    Parameters
    ----------
    fluxScale : `float`
        :math:`a_F`, factor on the Laplace flux σ.
    fluxFloor : `float`
        :math:`f_F`, the fractional flux error of the models.
    fluxBlendedness : `float`
        :math:`c_F`, the fractional flux error per unit blendedness.
    shapeScale : `float`
        :math:`a_e`, factor on the Laplace σ of e1 and e2.
    shapeFloor : `float`
        :math:`f_e`, the models' error of e1 and e2.
    shapeBlendedness : `float`
        :math:`c_e`, the e1, e2 error per unit blendedness.
    shapeNoise : `float`
        :math:`k_e`, the e1, e2 error at r-band S/N 1 (it falls as 1/S/N).
    chi2Inflation : `bool`
        Multiply the error by :math:`\\sqrt{\\max(1, \\chi^2_\\nu)}`.
    """

    fluxScale: float = 1.0
    fluxFloor: float = 0.0
    fluxBlendedness: float = 0.0
    shapeScale: float = 1.0
    shapeFloor: float = 0.0
    shapeBlendedness: float = 0.0
    shapeNoise: float = 0.0
    chi2Inflation: bool = False

    @classmethod
    def fromConfig(cls, config) -> ErrorModel:
        """The error model that ``config`` holds in :data:`CONFIG_FIELDS`.

        Parameters
        ----------
        config : `MadnessDeblendConfig`
            The task's config.

        Returns
        -------
        errorModel : `ErrorModel`
            Its error model.

        Examples
        --------
        >>> from lsst.meas.extensions.madness.deblend import MadnessDeblendConfig
        >>> ErrorModel.fromConfig(MadnessDeblendConfig(fluxErrScale=2.0)).fluxScale
        2.0
        """
        return cls(**{name: getattr(config, field) for name, field in CONFIG_FIELDS.items()})

    def configOverrides(self) -> dict[str, float | bool]:
        """The ``MadnessDeblendConfig`` fields that hold this error model, and their values.

        Returns
        -------
        overrides : `dict` [`str`, `float` or `bool`]
            Config field name to value, every field of :data:`CONFIG_FIELDS`.

        Examples
        --------
        >>> ErrorModel().configOverrides()["fluxErrScale"], ErrorModel().configOverrides()["errChi2Inflation"]
        (1.0, False)
        """
        return {field: getattr(self, name) for name, field in CONFIG_FIELDS.items()}

    @staticmethod
    def snr(flux: npt.ArrayLike, laplace: npt.ArrayLike) -> np.ndarray:
        r""":math:`\nu = |F| / \sigma_{F,L}`, the S/N by the Laplace σ that ``shapeErr``'s noise term takes.

        Parameters
        ----------
        flux : `numpy.ndarray`
            The child's flux in the shapes' band.
        laplace : `numpy.ndarray`
            Its Laplace σ (same units); 0 gives an infinite S/N, NaN a NaN one.

        Returns
        -------
        snr : `numpy.ndarray`
            :math:`\nu`.

        Examples
        --------
        >>> ErrorModel.snr(-50.0, 5.0).item()
        10.0
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.abs(np.asarray(flux, dtype=float)) / np.asarray(laplace, dtype=float)

    def _inflated(self, variance: np.ndarray, chi2: npt.ArrayLike) -> np.ndarray:
        sigma = np.sqrt(variance)
        return sigma * _inflation(chi2) if self.chi2Inflation else sigma

    def fluxErr(self, laplace: npt.ArrayLike, flux: npt.ArrayLike, chi2: npt.ArrayLike,
                blendedness: npt.ArrayLike) -> np.ndarray:
        r""":math:`\sigma_F`, in the units of ``laplace`` and ``flux``.

        Parameters
        ----------
        laplace : `numpy.ndarray`
            The Laplace σ of the fluxes.
        flux : `numpy.ndarray`
            The fluxes (same shape, or broadcasting with it).
        chi2 : `numpy.ndarray`
            Each child's reduced χ² over its footprint (broadcasting).
        blendedness : `numpy.ndarray`
            Each child's blendedness (broadcasting).

        Returns
        -------
        fluxErr : `numpy.ndarray`
            The errors; NaN where ``laplace`` is NaN.

        Examples
        --------
        A child that shares half the light under its profile: 20 % of its flux from the blendedness term.

        >>> ErrorModel(fluxBlendedness=0.4).fluxErr(0.0, 100.0, chi2=1.0, blendedness=0.5).item()
        20.0
        """
        size = np.abs(np.asarray(flux, dtype=float))
        return self._inflated((self.fluxScale * np.asarray(laplace, dtype=float)) ** 2 + (self.fluxFloor * size) ** 2
                              + (self.fluxBlendedness * _share(blendedness) * size) ** 2, chi2)

    def shapeErr(self, laplace: npt.ArrayLike, chi2: npt.ArrayLike, blendedness: npt.ArrayLike,
                 snr: npt.ArrayLike) -> np.ndarray:
        r""":math:`\sigma_e` of e1 or e2.

        Parameters
        ----------
        laplace : `numpy.ndarray`
            The Laplace σ of the ellipticity component.
        chi2 : `numpy.ndarray`
            Each child's reduced χ² over its footprint (broadcasting).
        blendedness : `numpy.ndarray`
            Each child's blendedness (broadcasting).
        snr : `numpy.ndarray`
            :math:`\nu`, the child's S/N in the shape's band by its Laplace flux σ; a zero or NaN S/N
            gives an infinite error when ``shapeNoise`` is positive.

        Returns
        -------
        shapeErr : `numpy.ndarray`
            The errors; NaN where ``laplace`` is NaN.

        Examples
        --------
        The shape noise of a galaxy at S/N 10, beside a Laplace σ of 0.03:

        >>> round(ErrorModel(shapeNoise=0.4).shapeErr(0.03, chi2=1.0, blendedness=0.0, snr=10.0).item(), 3)
        0.05
        """
        with np.errstate(divide="ignore", invalid="ignore"):
            noise = self.shapeNoise / np.nan_to_num(np.abs(np.asarray(snr, dtype=float)), nan=0.0) \
                if self.shapeNoise > 0 else 0.0
        return self._inflated((self.shapeScale * np.asarray(laplace, dtype=float)) ** 2 + self.shapeFloor ** 2
                              + (self.shapeBlendedness * _share(blendedness)) ** 2 + np.square(noise), chi2)
