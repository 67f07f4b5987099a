"""The deblender's catalogue columns, named as in ``lsst.meas.extensions.scarlet``.

:class:`DeblendColumns` adds them to a schema once, when a deblend task is made; the task fills
parent and child records. Parents and children share ``deblend_chi2`` and the ``madness_*``
columns; the rest belong to one kind of record and keep their default on the other.

==================================================  ====  ========================================================
column                                              on    meaning
==================================================  ====  ========================================================
``deblend_nChild``                                  P     children made
``deblend_nPeaks``                                  P     peaks in the parent footprint
``deblend_runtime``                                 P     modelling time in ms (a batch's time shared by peaks)
``deblend_iterations``                              P     optimiser steps taken
``deblend_chi2``                                    P, C  reduced χ² of the model on the (child) footprint
``deblend_blendConvergenceFailedFlag``              P     the fit stopped at ``maxIter``
``deblend_skipped``                                 P     not deblended (any reason below)
``deblend_skipped_isPseudo``                        P     a pseudo source (``pseudoColumns``)
``deblend_skipped_parentTooBig``                    P     footprint area, size, axis ratio or area × peaks too big
``deblend_skipped_masked``                          P     too many pixels with ``maskLimits`` planes
``deblend_skipped_tooManyPeaks``                    P     more than ``maxNumberOfPeaks`` peaks
``deblend_skipped_isolatedParent``                  P     one peak and ``processSingles`` off
``deblend_skipped_noPeaks``                         P     the footprint has no peak
``deblend_skipped_noData``                          P     no footprint pixel has data (zero weight everywhere)
``deblend_failed``, ``deblend_error``               P     modelling raised; the exception's class name
``deblend_incompleteData``                          P     some footprint pixels have zero weight
``deblend_fallback``, ``deblend_fallbackReason``    P, C  modelled by the fallback deblender, and why
``deblend_peakId``                                  C     id of the child's peak in the parent footprint
``deblend_peak_center_x``, ``_y``                   C     the peak's integer pixel position
``deblend_peak_instFlux``                           C     the peak's value
``deblend_parentNPeaks``, ``deblend_parentNChild``  C     the parent's peaks and children
``deblend_zeroFlux``                                C     the model has no pixel above threshold
``deblend_blendedness``                             C     :math:`1 - \\sum m_k^2 / \\sum m_k M` (M = all models)
``madness_logLikelihood``                           P, C  the fit's log-likelihood (the parent's, on children)
``madness_logPrior``                                C     the flow's log-density of the child's latent
``madness_logPriorQuantile``                        C     that log-density's quantile among held-out isolated
                                                          galaxies (the model card's table; NaN without one)
``madness_lowPrior``                                C     ``madness_logPriorQuantile`` below ``lowPriorQuantile``
``madness_badFit``                                  P, C  ``deblend_chi2`` above ``badFitChi2``
``madness_nResidualPeaks``                          P     peaks added from the fit's residual (``residualPeakRounds``)
``deblend_residualPeak``                            C     the child's peak came from the residual, not detection
``madness_converged``                               P, C  the MAP fit met its stopping rule
``madness_flux_<band>``                             C     the child's flux in each band, nJy (the exposure's
                                                          calibration); NaN in a band the exposure lacks
``madness_fluxErr_<band>``                          C     its error, nJy: the Laplace σ (:mod:`.uncertainty`) with
                                                          the :mod:`.errorModel` terms; NaN for fallback children
``madness_e1``, ``madness_e2``                      C     the r-band model's adaptive-moment distortion (the
                                                          benchmark's ellipticity); NaN for fallback children
``madness_e1Err``, ``madness_e2Err``                C     their errors: Laplace σ with the :mod:`.errorModel` terms
``coord_ra``, ``coord_dec``                         P, C  with a WCS, the sky position (rad): a child's peak, a
                                                          parent's footprint centroid (if the input has none)
==================================================  ====  ========================================================
"""

from __future__ import annotations

from collections.abc import Sequence

from ..afw.table import Schema

__all__ = ["SKIP_FLAGS", "DeblendColumns"]

#: Skip reasons, in the order they are checked, and their flag columns.
SKIP_FLAGS: dict[str, str] = {
    "isPseudo": "deblend_skipped_isPseudo",
    "parentTooBig": "deblend_skipped_parentTooBig",
    "masked": "deblend_skipped_masked",
    "tooManyPeaks": "deblend_skipped_tooManyPeaks",
    "isolatedParent": "deblend_skipped_isolatedParent",
    "noPeaks": "deblend_skipped_noPeaks",
    "noData": "deblend_skipped_noData",
}

#: LSST's minimal-schema sky position, added when a parent catalogue lacks it (filled when the exposure has a WCS).
_COORDS = [
    ("coord_ra", "Angle", "position in ra/dec", "rad"),
    ("coord_dec", "Angle", "position in ra/dec", "rad"),
]
_PARENT = [
    ("deblend_nChild", "I", "Number of children this object has (defaults to 0)", ""),
    ("deblend_nPeaks", "I", "Number of initial peaks in the blend", ""),
    ("deblend_runtime", "F", "Time spent modelling the blend (a batch's time shared by peaks)", "ms"),
    ("deblend_iterations", "I", "Number of iterations of the model fit", ""),
    ("deblend_chi2", "F", "Reduced chi^2 of the model over the (child) footprint", ""),
    ("deblend_blendConvergenceFailedFlag", "Flag", "The model fit stopped at maxIter without converging", ""),
    ("deblend_skipped", "Flag", "Deblender skipped this source", ""),
    ("deblend_failed", "Flag", "Deblending failed on this source", ""),
    ("deblend_error", "String", "Class name of the exception when deblending failed", ""),
    ("deblend_incompleteData", "Flag", "Some pixels of the footprint have no data (zero weight)", ""),
    ("deblend_fallback", "Flag", "Modelled by the fallback deblender", ""),
    ("deblend_fallbackReason", "String", "Why the fallback deblender modelled the blend", ""),
    ("madness_logLikelihood", "D", "Log-likelihood of the blend's model (MADNESS)", ""),
    ("madness_converged", "Flag", "The MAP fit met its stopping rule (MADNESS)", ""),
    ("madness_badFit", "Flag", "Reduced chi^2 over the (child) footprint above badFitChi2 (MADNESS)", ""),
    ("madness_nResidualPeaks", "I", "Peaks added to the footprint from the fit's residual (MADNESS)", ""),
]
_SKIP_DOCS = {
    "isPseudo": "Pseudo source (e.g. sky object) not deblended",
    "parentTooBig": "Parent footprint too big (area, size, axis ratio or area x peaks)",
    "masked": "Parent footprint too masked",
    "tooManyPeaks": "Parent footprint has too many peaks",
    "isolatedParent": "Parent has one peak and processSingles is off",
    "noPeaks": "Parent footprint has no peak",
    "noData": "No pixel of the parent footprint has data (zero weight in every band)",
}
_CHILD = [
    ("deblend_peakId", "I", "Id of the peak in the parent footprint", ""),
    ("deblend_peak_center_x", "I", "x position of the child's peak", "pixel"),
    ("deblend_peak_center_y", "I", "y position of the child's peak", "pixel"),
    ("deblend_peak_instFlux", "F", "Value of the peak in the detection image", ""),
    ("deblend_parentNPeaks", "I", "Number of peaks of the parent", ""),
    ("deblend_parentNChild", "I", "Number of children of the parent", ""),
    ("deblend_zeroFlux", "Flag", "The child's model has no pixel above the footprint threshold", ""),
    ("deblend_blendedness", "F", "1 - sum(model^2) / sum(model * all models): 0 when isolated", ""),
    ("madness_logPrior", "D", "Flow log-density of the child's latent (MADNESS)", ""),
    ("madness_logPriorQuantile", "D", "Quantile of madness_logPrior among held-out isolated galaxies (MADNESS)", ""),
    ("madness_lowPrior", "Flag", "madness_logPriorQuantile below lowPriorQuantile: a galaxy implausible for the "
                                 "models (MADNESS)", ""),
    ("madness_e1", "F", "e1 distortion of the child's r-band model, adaptive moments (MADNESS)", ""),
    ("madness_e2", "F", "e2 distortion of the child's r-band model, adaptive moments (MADNESS)", ""),
    ("madness_e1Err", "F", "Uncertainty of madness_e1: Laplace, with the error model's terms (MADNESS)", ""),
    ("madness_e2Err", "F", "Uncertainty of madness_e2: Laplace, with the error model's terms (MADNESS)", ""),
    ("deblend_residualPeak", "Flag", "The child's peak was found in the residual of its parent's fit (MADNESS)", ""),
]


class DeblendColumns:
    """Adds the deblender's columns to ``schema`` (those already there are kept) and names them.

    Parameters
    ----------
    schema : `~lsst.meas.extensions.madness.afw.table.Schema`
        The catalogue schema; the columns of the module docstring are added to it in place.
    bands : sequence of `str`
        The deblended bands: one flux and one flux-error column each.

    Examples
    --------
    >>> from lsst.meas.extensions.madness.afw.table import SourceTable
    >>> schema = SourceTable.makeMinimalSchema()
    >>> columns = DeblendColumns(schema, ["g", "r"])
    >>> [n for n in schema.getNames() if n.startswith("madness_flux_")]
    ['madness_flux_g', 'madness_flux_r']
    >>> columns.fluxColumn("g"), columns.fluxErrColumn("g")
    ('madness_flux_g', 'madness_fluxErr_g')
    """

    def __init__(self, schema: Schema, bands: Sequence[str]):
        self.schema = schema
        self.bands = tuple(bands)
        rows = list(_COORDS) + list(_PARENT) + [(flag, "Flag", _SKIP_DOCS[reason], "")
                                                for reason, flag in SKIP_FLAGS.items()]
        rows += list(_CHILD) + [(self.fluxColumn(b), "F", f"Model flux in band {b}", "nJy") for b in self.bands]
        rows += [(self.fluxErrColumn(b), "F", f"Uncertainty of the model flux in band {b}: Laplace, with the "
                                              f"error model's terms (MADNESS)", "nJy") for b in self.bands]
        for name, kind, doc, units in rows:
            if name not in schema:
                schema.addField(name, type=kind, doc=doc, units=units)

    @staticmethod
    def fluxColumn(band: str) -> str:
        """The name of the model-flux column (nJy) of ``band``.

        Parameters
        ----------
        band : `str`
            The band's name.

        Returns
        -------
        name : `str`
            ``madness_flux_<band>``.

        Examples
        --------
        >>> DeblendColumns.fluxColumn("r")
        'madness_flux_r'
        """
        return f"madness_flux_{band}"

    @staticmethod
    def fluxErrColumn(band: str) -> str:
        """The name of the Laplace flux-uncertainty column (nJy) of ``band``.

        Parameters
        ----------
        band : `str`
            The band's name.

        Returns
        -------
        name : `str`
            ``madness_fluxErr_<band>``.

        Examples
        --------
        >>> DeblendColumns.fluxErrColumn("r")
        'madness_fluxErr_r'
        """
        return f"madness_fluxErr_{band}"
