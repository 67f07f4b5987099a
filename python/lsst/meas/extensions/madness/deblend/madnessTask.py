r"""``MadnessDeblendTask``: the MADNESS deblender as an LSST deblend task.

For every parent that passes the skip checks, the galaxies at its K peaks are fitted together in
the 16-d latent space of the trained VAE, maximising the posterior

.. math:: \log p(Z \mid y) = -\tfrac12 \sum w\,\big(y - \textstyle\sum_i \mathrm{place}(p_\theta(z_i))\big)^2
          + \sum_i \log p_\varphi(z_i) + \mathrm{const}

from the VAE-deblender encoder's latents (:mod:`.mapCore`, :mod:`.fit`), many parents in one
batched optimisation, on CUDA when there is one. The decoded galaxies are the children's models.

The blends are cut in the units the models were trained in (:meth:`MadnessDeblendTask.deblenderPhotoCalibs`,
:mod:`.calibration`): an exposure in nJy and the same one in counts with its zero point give the
same children.

Parents that MADNESS should not model go to the ``fallback`` subtask (SCARLET by default),
flagged ``deblend_fallback`` with ``deblend_fallbackReason``, by these rules:

==================  ==========================  =============================================
reason              rule (config field)         when
==================  ==========================  =============================================
``forced``          ``forceFallback``           always (for testing and comparisons)
``tooManyPeaks``    ``fallbackTooManyPeaks``    more peaks than ``maxMadnessPeaks``
``coreFailure``     ``fallbackOnFailure``       the MAP core raised for this parent
``nonFinite``       ``fallbackNonFinite``       the fit gave a non-finite model or prior
``timeBudget``      ``fallbackTimeBudget``      the fit ran past ``maxSecondsPerParent``
``badFit``          ``fallbackBadFit`` (off)    the fit's reduced χ² over the footprint is above
                                                ``badFitChi2``
==================  ==========================  =============================================

With a rule off, such a parent fails instead (``deblend_failed``, ``deblend_error``); but for
``badFit``, whose parents keep their MADNESS children, flagged ``madness_badFit``.

Every child says how far to trust it: ``madness_logPriorQuantile`` places its latent's log-prior
among held-out isolated galaxies (:mod:`..models.priorQuantiles`; NaN when the model card has no
table, or for the fallback's children), ``madness_lowPrior`` is set below ``lowPriorQuantile``
(an implausible galaxy for the models), and ``madness_badFit`` when its footprint's reduced χ²
(``deblend_chi2``) is above ``badFitChi2``; a parent gets ``madness_badFit`` from its own.

With ``computeUncertainties`` every MADNESS child also gets Laplace uncertainties
(:mod:`.uncertainty`): ``madness_fluxErr_<band>`` (nJy), its r-band shape ``madness_e1``/``madness_e2``
(adaptive moments, the benchmark's) and their ``madness_e1Err``/``madness_e2Err``, each Laplace σ
with the terms of :mod:`.errorModel` added (``fluxErr*``, ``shapeErr*``, ``errChi2Inflation``)
(chosen for the shipped weights by ``madness-bench pulls``); NaN for the fallback's children.

Faults stay inside the parents they touch: a batch that raises is fitted again parent by
parent, so only the parents that raise alone go to the fallback; a batch that runs out of GPU
memory is fitted again in batches of half as many galaxies, down to one parent per batch.

References
----------
Biswas et al. 2025, A&A, "MADNESS deblender: Maximum A posteriori with Deep NEural networks for
Source Separation", Sec. 3.5.

Examples
--------
>>> from lsst.meas.extensions.madness.afw.table import SourceTable
>>> schema = SourceTable.makeMinimalSchema()
>>> task = MadnessDeblendTask(schema)
>>> task.bands, "madness_flux_r" in schema, task.fallback.getFullName()
(('u', 'g', 'r', 'i', 'z', 'y'), True, 'madnessDeblend.fallback')
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

import numpy as np

from ..afw.detection import Footprint
from ..afw.exposure import MultibandExposure
from ..afw.table import SourceRecord
from ..framework import ConfigurableField, ConfigurableInstance, Field
from ..models.priorQuantiles import priorQuantile
from .baseTask import DeblendBaseConfig, DeblendBaseTask, parentChi2
from .blendModel import BlendModel
from .blends import Blend
from .errorModel import ErrorModel
from .footprints import ChildModels
from .mapCore import DEFAULT_MAP_LR, MapConfig
from .scarletTask import ScarletDeblendTask
from .uncertainty import SHAPE_BAND

__all__ = ["MadnessDeblendConfig", "MadnessDeblendTask"]

#: The MAP core's defaults: the one place the task's MAP fields take theirs from.
_CORE = MapConfig()


class MadnessDeblendConfig(DeblendBaseConfig):
    """Configuration of :class:`MadnessDeblendTask`."""

    modelDir: str | None = Field(
        None, doc="Directory of exported models (madness-models export); None: the weights shipped with the "
                  "package.")
    device: str = Field("auto", doc="Torch device of the MAP core: 'auto' (CUDA when available), 'cpu', 'cuda', "
                                    "'cuda:1', ...")
    lr: float | None = Field(
        None, gt=0, doc="Initial Adam learning rate in latent space. None: the step size chosen for the models on "
                        "validation blends (their card's map.lr, madness-models tune-map), else 0.1 (the paper: "
                        "0.05, with which bright galaxies do not converge in 200 steps; doc/madness-deblend.md).")
    lrDecay: float = Field(_CORE.lrDecay, gt=0, le=1, doc="Factor applied to the learning rate every lrDecayEvery "
                                                          "steps (the paper: 0.8).")
    lrDecayEvery: int = Field(_CORE.lrDecayEvery, ge=1, doc="Steps between learning-rate decays.")
    maxIter: int = Field(_CORE.maxIter, ge=1, doc="Most optimisation steps per parent.")
    minIter: int = Field(_CORE.minIter, ge=1, doc="Fewest steps before a parent may stop.")
    convergenceWindow: int = Field(_CORE.window, ge=1, doc="Steps over which loss decreases are compared.")
    relativeTolerance: float = Field(
        _CORE.tolerance, ge=0, doc="Stop a parent when its recent loss decrease is below this fraction of its first "
                                   "one.")
    backtrack: bool = Field(
        _CORE.backtrack, doc="A parent whose loss rises goes back to its best latents and halves its step length.")
    optimizer: Literal["adam", "lm"] = Field(
        _CORE.optimizer, doc="MAP optimiser: 'adam' (first-order, the paper's; lr to backtrack apply) or 'lm' "
                             "(Levenberg-Marquardt in latent space with Gauss-Newton curvature; maxIter, lmDamping and "
                             "lmTolerance apply; deblend/levenbergMarquardt.py).")
    lmDamping: float = Field(_CORE.lmDamping, gt=0, doc="Levenberg-Marquardt: initial damping, relative to the "
                                                        "Hessian's diagonal.")
    lmTolerance: float = Field(
        _CORE.lmTolerance, gt=0, doc="Levenberg-Marquardt: stop a parent when a step lowers its loss (half a chi^2) "
                                     "by less than this.")
    lmRelativeTolerance: float = Field(
        _CORE.lmRelativeTolerance, ge=0, doc="Levenberg-Marquardt: stop a parent when a step lowers its loss by less "
                                             "than this fraction of what the fit has gained since its start.")
    subpixelShift: bool = Field(
        True, doc="Shift each decoded galaxy by its peak's sub-pixel offset (Lanczos-3); False rounds peak "
                  "positions to pixels as the paper does.")
    maxGalaxiesPerBatch: int = Field(
        64, ge=1, doc="Most galaxies optimised together (parents sorted by peaks and padded to the largest).")
    maxMadnessPeaks: int = Field(
        64, ge=1, doc="Parents with more peaks go to the fallback deblender (or fail, see fallbackTooManyPeaks).")
    forceFallback: bool = Field(False, doc="Send every parent to the fallback deblender.")
    fallbackTooManyPeaks: bool = Field(True, doc="Use the fallback for parents with more than maxMadnessPeaks peaks.")
    fallbackOnFailure: bool = Field(True, doc="Use the fallback for parents whose MAP fit raised.")
    fallbackNonFinite: bool = Field(True, doc="Use the fallback for parents whose fit is not finite.")
    maxSecondsPerParent: float | None = Field(
        120.0, gt=0, doc="Time budget of the MAP fit per parent (a batch of n parents gets n times it); "
                         "parents still running when it is spent go to the fallback. None: no budget.")
    fallbackTimeBudget: bool = Field(True, doc="Use the fallback for parents whose fit ran out of its time budget.")
    lowPriorQuantile: float = Field(
        0.001, ge=0, le=1, doc="Children whose log-prior lies below this quantile of the held-out isolated galaxies' "
                               "(madness_logPriorQuantile, from the model card) get madness_lowPrior.")
    badFitChi2: float = Field(
        5.0, gt=0, doc="Reduced chi^2 over a footprint (deblend_chi2) above which a parent or child gets "
                       "madness_badFit. The variance plane holds the noise of the sky and of the sources in LSST "
                       "coadds; where it holds the sky's only, bright sources raise chi^2 by their photon noise.")
    fallbackBadFit: bool = Field(
        False, doc="Use the fallback for parents whose MADNESS fit has madness_badFit (reduced chi^2 over the "
                   "parent footprint above badFitChi2); their children then come from the fallback.")
    computeUncertainties: bool = Field(
        True, doc="After the MAP fit, compute each MADNESS child's Laplace uncertainties (deblend/uncertainty.py: "
                  "the latents' posterior covariance from the Gauss-Newton Hessian plus the flow's, propagated "
                  "linearly): madness_fluxErr_<band>, madness_e1/e2 and madness_e1Err/e2Err. False: these are NaN.")
    # The error model (deblend/errorModel.py): the defaults were chosen for the shipped weights on simulated
    # fields by madness-bench pulls (doc/madness-deblend.md); scales 1, the other terms 0 and no chi^2
    # inflation give the Laplace sigma alone.
    fluxErrScale: float = Field(
        1.77, gt=0, doc="a_F: factor on the Laplace flux error, sigma_F^2 = max(1, chi2) [a_F^2 sigma_Laplace^2 "
                       "+ (f_F flux)^2 + (c_F blendedness flux)^2] (deblend/errorModel.py; max(1, chi2) only with "
                       "errChi2Inflation).")
    fluxErrFloor: float = Field(
        0.034, ge=0, doc="f_F: fractional model error of the children's fluxes, in quadrature.")
    fluxErrBlendedness: float = Field(
        0.51, ge=0, doc="c_F: fractional flux error per unit deblend_blendedness (light shared with neighbours), "
                        "in quadrature.")
    shapeErrScale: float = Field(
        1.15, gt=0, doc="a_e: factor on the Laplace errors of e1 and e2, sigma_e^2 = max(1, chi2) [a_e^2 "
                       "sigma_Laplace^2 + f_e^2 + (c_e blendedness)^2 + (k_e / snr)^2] (snr: the child's r-band "
                       "flux over its Laplace error).")
    shapeErrFloor: float = Field(
        0.0068, ge=0, doc="f_e: model error of e1 and e2, in quadrature.")
    shapeErrBlendedness: float = Field(
        0.16, ge=0, doc="c_e: e1, e2 error per unit deblend_blendedness, in quadrature.")
    shapeErrNoise: float = Field(
        0.65, ge=0, doc="k_e: e1, e2 error at r-band S/N 1, falling as 1/S/N (the shape noise of faint galaxies that "
                        "the Laplace error underestimates), in quadrature.")
    errChi2Inflation: bool = Field(
        True, doc="Multiply the flux and shape errors by sqrt(max(1, deblend_chi2)), the Birge ratio: a child "
                  "drawn from a misfit is as uncertain as the misfit is large.")
    residualPeakRounds: int = Field(
        0, ge=0, doc="Rounds of the search for unrecognised blends (deblend/residualPeaks.py): after a MADNESS fit, "
                     "significant positive peaks of the PSF-matched residual inside the footprint become new "
                     "sources (deblend_residualPeak), started by the VAE-deblender encoder, and the parent is "
                     "refitted; the new source is kept only if the refit passes the likelihood-ratio and prior "
                     "tests. 0: no search.")
    residualPeakThreshold: float = Field(
        3.5, gt=0, doc="Least matched-filter significance (sigma, all bands together) of a residual peak proposed as "
                       "a source; the refit's tests then decide.")
    residualPeakMinSeparation: float = Field(
        4.0, ge=0, doc="Least distance, pixels, of a residual peak from the parent's peaks, from other new ones and "
                       "from rejected ones.")
    residualPeaksPerRound: int = Field(1, ge=1, doc="Most residual peaks added to one parent per round.")
    residualPeakMisfitRatio: float = Field(
        0.75, ge=0, doc="A residual peak must reach this multiple of the most negative significance within "
                        "residualPeakMisfitRadius (a misfit leaves residuals of both signs, a missing source a "
                        "positive one only). 0: no such test.")
    residualPeakMisfitRadius: float = Field(
        8.0, gt=0, doc="Radius, pixels, of the misfit test's neighbourhood.")
    residualPeakFalseAlarm: float = Field(
        1e-3, gt=0, lt=1, doc="Likelihood-ratio test of a new source: its refit must raise ln L by more than "
                              "chi2_d(1 - this)/2, d being its latent dimension (what d free numbers gain on "
                              "noise with this probability).")
    residualPeakMinPriorQuantile: float = Field(
        0.01, ge=0, lt=1, doc="A new source's log-prior must lie above this quantile of the training galaxies' "
                              "(madness_logPriorQuantile); needs the model card's logPriorQuantiles, without which "
                              "the test is skipped with a warning.")
    fallback: ConfigurableInstance = ConfigurableField(
        doc="Deblender for the parents MADNESS does not model (see the fallback rules).", target=ScarletDeblendTask)

    def mapConfig(self, modelLr: float | None = None) -> MapConfig:
        """The MAP core's settings; ``modelLr`` is the models' own step size (``MadnessModels.mapLearningRate``).

        Parameters
        ----------
        modelLr : `float`, optional
            The models' card's step size, used when ``lr`` is None; None: :data:`~.mapCore.DEFAULT_MAP_LR`
            in that case.

        Returns
        -------
        config : `~.mapCore.MapConfig`
            The optimiser, learning rate and stopping rule of this config's fields.

        Examples
        --------
        >>> config = MadnessDeblendConfig()
        >>> config.mapConfig(modelLr=0.2).lr, MadnessDeblendConfig(lr=0.05).mapConfig(modelLr=0.2).lr
        (0.2, 0.05)
        """
        lr = self.lr if self.lr is not None else modelLr if modelLr is not None else DEFAULT_MAP_LR
        return MapConfig(lr=lr, lrDecay=self.lrDecay, lrDecayEvery=self.lrDecayEvery, maxIter=self.maxIter,
                         minIter=self.minIter, window=self.convergenceWindow, tolerance=self.relativeTolerance,
                         backtrack=self.backtrack, optimizer=self.optimizer, lmDamping=self.lmDamping,
                         lmTolerance=self.lmTolerance, lmRelativeTolerance=self.lmRelativeTolerance)

    def validate(self) -> None:  # type: ignore[override]  # pex_config's validate(), as Config's
        super().validate()
        if self.maxMadnessPeaks > self.maxGalaxiesPerBatch:
            raise ValueError(f"maxMadnessPeaks ({self.maxMadnessPeaks}) must not exceed maxGalaxiesPerBatch "
                             f"({self.maxGalaxiesPerBatch}): a batch holds at least one whole parent")
        if self.minIter > self.maxIter:
            # The stopping rule would never be reached: every parent would end unconverged at maxIter.
            raise ValueError(f"minIter ({self.minIter}) must not exceed maxIter ({self.maxIter})")
        if self.device != "auto":
            from ..models.device import checkDeviceName

            # Only the spelling: whether this machine has the device is asked when the models load.
            try:
                checkDeviceName(self.device)
            except ValueError as error:
                raise ValueError(f"device: {error}") from None


class MadnessCoreError(RuntimeError):
    """A parent MADNESS could not model, and whose fallback rule is off."""


def _missingValue(value: Any) -> Any:
    """What a new peak holds in an extra peak field whose values elsewhere are like ``value``
    (-1 for integers, as detection gives peaks without a truth row)."""
    if isinstance(value, (bool, np.bool_)):
        return False
    if isinstance(value, (int, np.integer)):
        return -1
    if isinstance(value, (float, np.floating)):
        return float("nan")
    return ""


def _grownFootprint(footprint: Footprint, peaks: list[tuple[int, float, float, float]]) -> Footprint:
    """``footprint``'s spans and peaks (with their extra fields), and new ``peaks`` (id, x, y, value),
    whose extra fields are :func:`_missingValue`, so that every peak of the catalogue has the same fields."""
    grown = Footprint(footprint.getSpans())
    extras: dict[str, Any] = {}
    for peak in footprint.getPeaks():
        copy = grown.addPeak(peak.getFx(), peak.getFy(), peak.getPeakValue(), id=peak.getId())
        copy.extra.update(peak.extra)
        extras.update({name: value for name, value in peak.extra.items() if name not in extras})
    for peakId, x, y, value in peaks:
        grown.addPeak(x, y, value, id=peakId).extra.update({name: _missingValue(v) for name, v in extras.items()})
    return grown


class MadnessDeblendTask(DeblendBaseTask):
    """Deblend parents by MAP fits in the latent space of trained networks (module docstring).

    Parameters
    ----------
    schema, peakSchema, bands, progress
        As :class:`~.baseTask.DeblendBaseTask`; ``bands`` must be the models' bands if given.
    """

    ConfigClass = MadnessDeblendConfig
    config: MadnessDeblendConfig
    fallback: DeblendBaseTask  # made by makeSubtask
    _DefaultName = "madnessDeblend"
    method = "madness"

    def __init__(self, schema, peakSchema=None, **kwargs):
        super().__init__(schema, peakSchema, **kwargs)
        if self.bands != self.models.bands:
            raise ValueError(f"the models take bands {list(self.models.bands)}, not {list(self.bands)}")
        self.stampSize = self.models.stampSize
        self.makeSubtask("fallback", schema=schema, peakSchema=peakSchema, bands=self.bands, progress=self.progress)

    def defaultBands(self) -> tuple[str, ...]:
        return self.models.bands

    def deblenderPhotoCalibs(self):
        """The units the models were trained in: their card's ``surveyConditions`` coadds (the shipped models:
        electrons of LSST's 10-year coadds), or LSST's when the card has none."""
        from .calibration import surveyPhotoCalibs

        return surveyPhotoCalibs(self._surveyConditions(), self.bands)

    def deblenderPixelScale(self):
        """None for models with a model frame, which sample their galaxies on the exposure's pixels
        (:mod:`.observation`); else the pixel scale of the survey the models were trained on."""
        from ..afw.geom import Angle, arcseconds

        if self.models.modelFrame is not None:
            return None
        return Angle(self._surveyConditions().pixelScale, arcseconds)

    def blendStampSize(self, mExposure: MultibandExposure) -> int:
        """The models' stamp, in the exposure's pixels (:func:`~.fit.blendStampSize`)."""
        from .fit import blendStampSize

        scale = mExposure.getPixelScale()
        return blendStampSize(self.models, None if scale is None else scale.asArcseconds())

    def _surveyConditions(self):
        from ..sim.survey import LSST_CONDITIONS, SurveyConditions

        conditions = self.models.card.get("surveyConditions")
        return LSST_CONDITIONS if not conditions else SurveyConditions.model_validate(conditions)

    @property
    def models(self):
        """The TorchScript networks (loaded on first use, on the configured device)."""
        if getattr(self, "_models", None) is None:
            from ..models.export import loadModels, loadShippedModels

            device = self.config.device  # resolved once, by the loader: models.device from here on
            self._models = (loadShippedModels(device=device) if self.config.modelDir is None
                            else loadModels(self.config.modelDir, device=device))
        return self._models

    def modelBlends(self, mExposure: MultibandExposure, blends: Sequence[Blend],
                    parents: Sequence[SourceRecord]) -> list[BlendModel | Exception]:
        config = self.config
        results: list[BlendModel | Exception | None] = [None] * len(blends)
        reasons: dict[int, str] = {}
        for i, blend in enumerate(blends):
            if config.forceFallback:
                reasons[i] = "forced"
            elif blend.nPeaks > config.maxMadnessPeaks:
                if config.fallbackTooManyPeaks:
                    reasons[i] = "tooManyPeaks"
                else:
                    results[i] = MadnessCoreError(f"{blend.nPeaks} peaks, more than maxMadnessPeaks="
                                                  f"{config.maxMadnessPeaks}")
        todo = [i for i in range(len(blends)) if i not in reasons and results[i] is None]
        for i, outcome in zip(todo, self._fit([blends[i] for i in todo])):
            if isinstance(outcome, Exception):
                if config.fallbackOnFailure:
                    reasons[i] = f"coreFailure: {type(outcome).__name__}"
                    self.log.warning("MADNESS failed on parent %d (%s: %s); using the fallback",
                                     parents[i].getId(), type(outcome).__name__, outcome)
                else:
                    results[i] = outcome
            elif not outcome.finite:
                if config.fallbackNonFinite:
                    reasons[i] = "nonFinite"
                else:
                    results[i] = MadnessCoreError("the MAP fit is not finite")
            elif outcome.timedOut:
                if config.fallbackTimeBudget:
                    reasons[i] = "timeBudget"
                else:
                    results[i] = MadnessCoreError(f"the MAP fit ran past maxSecondsPerParent="
                                                  f"{config.maxSecondsPerParent} s")
            elif (config.fallbackBadFit
                  and parentChi2(blends[i], outcome, parents[i].getFootprint()) > config.badFitChi2):
                reasons[i] = "badFit"
                results[i] = outcome  # kept if the fallback fails
            else:
                results[i] = outcome
        if reasons:
            order = sorted(reasons)
            self.log.info("%d parents go to the fallback deblender (%s)", len(order),
                          ", ".join(sorted({r.split(":")[0] for r in reasons.values()})))
            try:
                fallen = self.fallback.modelBlends(mExposure, [blends[i] for i in order],
                                                   [parents[i] for i in order])
            except Exception as error:  # noqa: BLE001 - a broken fallback fails its parents, not MADNESS's
                self.log.warning("the fallback deblender raised (%s: %s)", type(error).__name__, error)
                fallen = [error] * len(order)
            for i, model in zip(order, fallen):
                if isinstance(model, BlendModel):
                    model.fallbackReason = reasons[i]
                elif reasons[i] == "badFit":
                    self.log.warning("the fallback failed on parent %d (%s); keeping its MADNESS fit, flagged "
                                     "madness_badFit", parents[i].getId(), model)
                    continue
                results[i] = model
        return results  # type: ignore[return-value]  # every slot is filled above

    def refineBlends(self, pending: list[tuple[SourceRecord, Blend]], models: list[BlendModel | Exception],
                     rebuild: Callable[[Footprint], Blend],
                     nextPeakId: int) -> tuple[list[tuple[SourceRecord, Blend]], list[BlendModel | Exception]]:
        """Unrecognised blends: residual peaks become sources and their parents are refitted
        (``residualPeakRounds`` rounds; :mod:`.residualPeaks`). A parent keeps its previous fit when the
        refit fails, is not finite, runs out of time, or fails the likelihood-ratio or prior test; its
        refused candidates are not proposed again. The task's metadata counts the peaks proposed
        (``nResidualPeaksProposed``) and kept (``nResidualPeaksKept``). See
        :meth:`.DeblendBaseTask.refineBlends`.

        Parameters
        ----------
        pending, models, rebuild, nextPeakId
            As :meth:`.DeblendBaseTask.refineBlends`.

        Returns
        -------
        pending, models : `list`
            With the refitted parents' new blends and models.

        Examples
        --------
        With no parents nothing changes:

        >>> from lsst.meas.extensions.madness.afw.table import SourceTable
        >>> MadnessDeblendTask(SourceTable.makeMinimalSchema()).refineBlends([], [], None, 1)
        ([], [])
        """
        from .residualPeaks import findResidualPeaks, residualSignificance

        config = self.config
        self._residualPeakIds: set[int] = set()
        pending, models = list(pending), list(models)
        table = self.models.logPriorQuantiles
        if config.residualPeakRounds and table is None and config.residualPeakMinPriorQuantile > 0:
            self.log.warning("the models' card has no logPriorQuantiles: residual peaks skip the prior test")
        rejected: dict[int, list[tuple[float, float]]] = {}  # per parent, (x, y) of candidates refused
        counts = {"proposed": 0, "kept": 0}
        for _ in range(config.residualPeakRounds):
            trials = []
            for j, ((parent, blend), model) in enumerate(zip(pending, models)):
                if (not isinstance(model, BlendModel) or model.method != self.method or model.fallbackReason
                        or not model.finite or blend.psfImages is None):
                    continue
                residual = blend.data - model.children.total(blend.data.shape)
                significance = residualSignificance(residual, blend.weight, blend.psfImages)
                footprint = parent.getFootprint()
                x0, y0 = blend.canvasBox.getMinX(), blend.canvasBox.getMinY()
                avoid = [(p.getFy() - y0, p.getFx() - x0) for p in footprint.getPeaks()]
                avoid += [(y - y0, x - x0) for x, y in rejected.get(j, [])]
                found = findResidualPeaks(significance, footprint.getSpans().asArray(blend.canvasBox).astype(bool),
                                          avoid, config.residualPeakThreshold, config.residualPeakMinSeparation,
                                          config.residualPeaksPerRound, config.residualPeakMisfitRatio,
                                          config.residualPeakMisfitRadius)
                if not found or len(footprint.getPeaks()) + len(found) > config.maxMadnessPeaks:
                    continue
                added = [(nextPeakId + k, float(x0 + col), float(y0 + row), value)
                         for k, (row, col, value) in enumerate(found)]
                nextPeakId += len(added)
                grown = _grownFootprint(footprint, added)
                try:
                    trials.append((j, grown, rebuild(grown), added))
                except Exception as error:  # noqa: BLE001 - the parent keeps its first fit
                    self.log.warning("parent %d: no blend with its residual peaks (%s)", parent.getId(), error)
            if not trials:
                break
            counts["proposed"] += sum(len(t[3]) for t in trials)
            for (j, grown, blend, added), fit in zip(trials, self._fit([t[2] for t in trials])):
                if not self._keepResidualPeaks(models[j], blend, fit, [i for i, _, _, _ in added], table):
                    rejected.setdefault(j, []).extend((x, y) for _, x, y, _ in added)
                    continue
                pending[j][0].setFootprint(grown)
                pending[j], models[j] = (pending[j][0], blend), fit
                self._residualPeakIds.update(i for i, _, _, _ in added)
                counts["kept"] += len(added)
        self.metadata["nResidualPeaksProposed"] = counts["proposed"]
        self.metadata["nResidualPeaksKept"] = counts["kept"]
        return pending, models

    def _keepResidualPeaks(self, before: BlendModel | Exception, blend: Blend, fit: BlendModel | Exception,
                           newIds: list[int], table: dict | None) -> bool:
        """Whether a refit with new residual peaks passes the tests of :mod:`.residualPeaks`: it
        succeeded, raised ln L past the likelihood-ratio threshold, and no new source is a low-prior one."""
        from .residualPeaks import likelihoodGainThreshold

        config = self.config
        if (isinstance(fit, Exception) or isinstance(before, Exception) or not fit.finite or fit.timedOut
                or fit.latents is None):
            return False
        threshold = likelihoodGainThreshold(fit.latents.shape[1] * len(newIds), config.residualPeakFalseAlarm)
        if not fit.logLikelihood - before.logLikelihood >= threshold:
            return False
        if table is None or fit.logPrior is None or config.residualPeakMinPriorQuantile <= 0:
            return True
        index = [blend.peakIds.index(i) for i in newIds]
        return bool(np.all(priorQuantile(fit.logPrior[index], table) >= config.residualPeakMinPriorQuantile))

    def _addChildren(self, catalog, parent: SourceRecord, blend: Blend, model: BlendModel, calibration) -> None:
        first = len(catalog)
        super()._addChildren(catalog, parent, blend, model, calibration)
        added: set[int] = getattr(self, "_residualPeakIds", set())
        parent.set("madness_nResidualPeaks", sum(int(p.getId()) in added for p in parent.getFootprint().getPeaks()))
        for index in range(first, len(catalog)):
            catalog[index].set("deblend_residualPeak", int(catalog[index].get("deblend_peakId")) in added)
        # How far to trust each child (module docstring): the prior's verdict and the fit's.
        table = self.models.logPriorQuantiles
        limit = self.config.badFitChi2
        parent.set("madness_badFit", bool(parent.get("deblend_chi2") > limit))
        for index in range(first, len(catalog)):
            child = catalog[index]
            quantile = float("nan") if table is None else float(priorQuantile(child.get("madness_logPrior"), table))
            child.set("madness_logPriorQuantile", quantile)
            child.set("madness_lowPrior", bool(quantile < self.config.lowPriorQuantile))
            child.set("madness_badFit", bool(child.get("deblend_chi2") > limit))
        self._setUncertainties(catalog, first, blend, model, calibration)

    def _setUncertainties(self, catalog, first: int, blend: Blend, model: BlendModel, calibration) -> None:
        """``madness_fluxErr_<band>`` (nJy, as ``madness_flux_<band>``) and the r-band shape columns of the
        children ``catalog[first:]``, scaled and with the model-error floors in quadrature; NaN for
        fallback children."""
        errorModel = ErrorModel.fromConfig(self.config)
        k = len(catalog) - first
        nan = np.full((k, len(self.bands)), np.nan)
        fluxErr = nan if model.fluxErr is None else np.asarray(model.fluxErr, dtype=float)
        if blend.scale is not None:
            fluxErr = fluxErr / blend.scale[None, :]
        shapes = np.full((k, 4), np.nan) if model.shapes is None else np.asarray(model.shapes, dtype=float)
        shapeBand = self.bands.index(SHAPE_BAND) if SHAPE_BAND in self.bands else None
        for offset in range(k):
            child = catalog[first + offset]
            chi2, blendedness = child.get("deblend_chi2"), child.get("deblend_blendedness")
            laplace = np.abs(calibration.instFluxToNanojansky(fluxErr[offset]))
            fluxes = np.array([child.get(self.columns.fluxColumn(band)) for band in self.bands], dtype=float)
            for band, error in zip(self.bands, errorModel.fluxErr(laplace, fluxes, chi2, blendedness)):
                child.set(self.columns.fluxErrColumn(band), float(error))
            e1, e2, e1Err, e2Err = shapes[offset]
            snr = np.nan if shapeBand is None else errorModel.snr(fluxes[shapeBand], laplace[shapeBand])
            child.set("madness_e1", float(e1))
            child.set("madness_e2", float(e2))
            child.set("madness_e1Err", float(errorModel.shapeErr(e1Err, chi2, blendedness, snr)))
            child.set("madness_e2Err", float(errorModel.shapeErr(e2Err, chi2, blendedness, snr)))

    def _fit(self, blends: Sequence[Blend], maxGalaxies: int | None = None) -> list[BlendModel | Exception]:
        """MAP fits of ``blends``; if a batch raises, each of its blends is retried alone.

        Out of GPU memory, everything is retried in batches of half as many galaxies. Never
        raises: a blend whose fit raised alone gets the exception in its place.
        """
        import torch

        from .fit import fitBlends

        if not blends:
            return []
        maxGalaxies = maxGalaxies or self.config.maxGalaxiesPerBatch
        kwargs: dict[str, Any] = dict(
            config=self.config.mapConfig(self.models.mapLearningRate), maxGalaxies=maxGalaxies,
            progress=self.progress, subpixel=self.config.subpixelShift,
            secondsPerBlend=self.config.maxSecondsPerParent, uncertainties=self.config.computeUncertainties)
        try:
            fits = fitBlends(self.models, blends, **kwargs)
        except torch.OutOfMemoryError as error:
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            smallest = max(blend.nPeaks for blend in blends)
            if maxGalaxies // 2 >= smallest:
                self.log.warning("out of memory with %d galaxies per batch; retrying with %d",
                                 maxGalaxies, maxGalaxies // 2)
                return self._fit(blends, maxGalaxies // 2)
            if len(blends) == 1:
                return [error]
            return [outcome for blend in blends for outcome in self._fit([blend], maxGalaxies)]
        except Exception as error:  # noqa: BLE001 - find the parent(s) that broke the batch
            if len(blends) == 1:
                return [error]
            self.log.warning("a MAP batch raised (%s); fitting its %d parents one by one", error, len(blends))
            return [outcome for blend in blends for outcome in self._fit([blend], maxGalaxies)]
        return [BlendModel(ChildModels.fromStamps(blend, fit.stamps), fit.iterations, fit.converged, fit.runtime,
                           self.method, fit.logLikelihood, fit.logPrior, fit.latents, timedOut=fit.timedOut,
                           fluxErr=fit.fluxErr, shapes=fit.shapes, uncertaintyRuntime=fit.uncertaintyRuntime)
                for blend, fit in zip(blends, fits)]
