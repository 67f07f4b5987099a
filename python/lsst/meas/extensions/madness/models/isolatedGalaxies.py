r"""Isolated galaxies for a model directory: simulated as its networks saw them in training.

The tools that measure or extend a trained model set on isolated galaxies (the log-prior
quantiles of :mod:`.priorQuantiles`, the shape regressor of :mod:`.shapeRegressor`) all draw the
same kind of sample: galaxies of one split of a population, each turned by a random angle,
**observed** through a random PSF per band with the noise of the card's survey depth (what the
encoder sees), and drawn noiseless in the card's **model frame** (what the decoder draws), by
:class:`~lsst.meas.extensions.madness.sim.trainingStamps.TrainingStampSimulator` with the card's
model frame and survey conditions. This module builds that simulator from a loaded model
directory and draws reproducible batches from it.

The r-band signal-to-noise ratio of a galaxy is the benchmark's (:mod:`..benchmark.fields`):

.. math:: \nu = \sqrt{\sum_p I_p^2 / V_p}

over the pixels of its noiseless observed stamp :math:`I` with the variance :math:`V` of sky plus
the galaxy's own Poisson noise.

References
----------
Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 2 (data) and Sec. 4.1 (the S/N).

Examples
--------
>>> import torch
>>> batch = {"observedNoiseless": torch.full((2, 1, 3, 3), 2.0), "variance": torch.full((2, 1, 3, 3), 4.0)}
>>> stampSnr(batch, 0).tolist()
[3.0, 3.0]
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import numpy as np
import torch

__all__ = ["builtInPopulation", "isolatedBatches", "modelFrameSimulator", "stampSnr"]

#: The built-in population of budget training's shipped weights (``madness-train population
#: --population-size 200000 --population-seed 1``, ``runs/pop200k.npz``): size and seed.
BUILT_IN_POPULATION: tuple[int, int] = (200_000, 1)


def builtInPopulation(split: str, bands, size: int = BUILT_IN_POPULATION[0],
                      seed: int = BUILT_IN_POPULATION[1]) -> dict[str, np.ndarray]:
    """The ``split`` galaxies (``"train"``, ``"validation"`` or ``"test"``) of the built-in population of
    ``size`` galaxies drawn with ``seed`` and the paper's r-band S/N ≥ 10 cut, as the simulator's arrays.

    The default is the population the shipped weights were trained on (its train and validation
    splits are those of ``madness-train population --population-size 200000 --population-seed 1``).
    Needs astropy; about 5 s on one core.

    Parameters
    ----------
    split : `str`
        ``"train"``, ``"validation"`` or ``"test"``.
    bands : sequence of `str`
        The bands of the arrays' magnitudes, in channel order.
    size : `int`, optional
        Galaxies in the population before the split and the S/N cut.
    seed : `int`, optional
        Seed of the population.

    Returns
    -------
    arrays : `dict` [`str`, `numpy.ndarray`]
        The simulator's arrays of the split's galaxies (:func:`~..sim.trainingStamps.populationArrays`).

    Examples
    --------
    The shipped weights' population takes seconds to generate, so this is shown rather than run:

    .. code-block:: python

        arrays = builtInPopulation("validation", "ugrizy")
        arrays["magnitudes"].shape   # (N, 6): the validation galaxies, r-band S/N >= 10
    """
    from ..sim.galaxies import loadGalaxies
    from ..sim.splits import selectSplit
    from ..sim.trainingStamps import populationArrays

    return populationArrays(selectSplit(loadGalaxies(None, nGalaxies=size, seed=seed, snrCut=10.0), split), bands)


def modelFrameSimulator(models, population: Mapping[str, np.ndarray], *, device: str | torch.device = "cpu",
                        source: str = "the population"):
    """The :class:`~..sim.trainingStamps.TrainingStampSimulator` of ``models`` (a loaded
    :class:`~.export.MadnessModels`): its card's model frame, stamp size and survey conditions.

    Parameters
    ----------
    models : `~.export.MadnessModels`
        A loaded model-frame model directory (its card's ``modelFrame`` and ``surveyConditions``).
    population : mapping of `str` to `numpy.ndarray`
        The simulator's arrays of one split (:func:`builtInPopulation`,
        :func:`~..sim.trainingStamps.loadPopulationArrays`), in the models' bands.
    device : `str` or `torch.device`, optional
        Where the simulator draws.
    source : `str`, optional
        Name of the population in error messages.

    Returns
    -------
    simulator : `~..sim.trainingStamps.TrainingStampSimulator`
        Draws galaxies of ``population`` as the models saw them in training.

    Raises
    ------
    ValueError
        The card has no model frame (models that draw galaxies as observed), or ``population``'s
        bands differ from the models' (``source`` names it in the message).

    Examples
    --------
    >>> from lsst.meas.extensions.madness.sim import generatePopulation
    >>> from lsst.meas.extensions.madness.sim.trainingStamps import trainingSplits
    >>> from lsst.meas.extensions.madness.testing import makeTinyModels
    >>> population = trainingSplits(generatePopulation(40, seed=7), "ugrizy")["validation"]   # a few galaxies
    >>> models = makeTinyModels("ugrizy", modelFrame=True)                                    # untrained
    >>> simulator = modelFrameSimulator(models, population)
    >>> simulator.bands, simulator.stampSize
    (('u', 'g', 'r', 'i', 'z', 'y'), 45)
    """
    from ..sim.survey import SurveyConditions
    from ..sim.trainingStamps import TrainingStampSimulator
    from .config import ModelFrame

    if models.modelFrame is None:
        raise ValueError(f"{models.directory}: the card has no model frame; this needs models trained in one "
                         "(budget training)")
    stored = [str(b) for b in population["bands"]]
    if stored != list(models.bands):
        raise ValueError(f"{source}: galaxies with bands {''.join(stored)}, the models take {''.join(models.bands)}")
    return TrainingStampSimulator(population, models.bands, ModelFrame.model_validate(models.modelFrame),
                                  stampSize=models.stampSize,
                                  conditions=SurveyConditions.model_validate(models.card["surveyConditions"]),
                                  device=device)


def isolatedBatches(simulator, n: int, seed: int, batchSize: int = 256) -> Iterator[dict[str, torch.Tensor]]:
    """``n`` isolated galaxies of ``simulator`` in batches of at most ``batchSize``
    (:meth:`~..sim.trainingStamps.TrainingStampSimulator.isolated`: ``observed``, ``observedNoiseless``,
    ``variance``, ``model``), from one generator seeded with ``seed`` on the simulator's device: the
    same seed gives the same galaxies, orientations, PSFs and noise.

    Parameters
    ----------
    simulator : `~..sim.trainingStamps.TrainingStampSimulator`
        The simulator (:func:`modelFrameSimulator`).
    n : `int`
        Galaxies in all.
    seed : `int`
        Seed of the generator.
    batchSize : `int`, optional
        Most galaxies per batch.

    Yields
    ------
    batch : `dict` [`str`, `torch.Tensor`]
        ``observed``, ``observedNoiseless``, ``variance`` and ``model``, each (B, bands, S, S).

    Examples
    --------
    >>> from lsst.meas.extensions.madness.sim import generatePopulation
    >>> from lsst.meas.extensions.madness.sim.trainingStamps import trainingSplits
    >>> from lsst.meas.extensions.madness.testing import makeTinyModels
    >>> population = trainingSplits(generatePopulation(40, seed=7), "ugrizy")["validation"]   # a few galaxies
    >>> models = makeTinyModels("ugrizy", modelFrame=True)                                    # untrained
    >>> simulator = modelFrameSimulator(models, population)
    >>> batches = list(isolatedBatches(simulator, 5, seed=0, batchSize=2))
    >>> [len(batch["observed"]) for batch in batches], sorted(batches[0])
    ([2, 2, 1], ['model', 'observed', 'observedNoiseless', 'variance'])
    >>> torch.equal(next(isolatedBatches(simulator, 5, seed=0, batchSize=2))["observed"], batches[0]["observed"])
    True
    """
    generator = torch.Generator(device=simulator.device).manual_seed(int(seed))
    for start in range(0, n, batchSize):
        yield simulator.isolated(min(batchSize, n - start), generator)


def stampSnr(batch: Mapping[str, torch.Tensor], band: int) -> np.ndarray:
    """The S/N (module docstring) in channel ``band`` of each galaxy of a batch of :func:`isolatedBatches`.

    Parameters
    ----------
    batch : mapping of `str` to `torch.Tensor`
        With ``observedNoiseless`` and ``variance``, (N, bands, S, S).
    band : `int`
        The channel.

    Returns
    -------
    snr : `numpy.ndarray`
        (N,) float64 :math:`\\nu`.

    Examples
    --------
    >>> import torch
    >>> batch = {"observedNoiseless": torch.ones(1, 2, 4, 4), "variance": torch.full((1, 2, 4, 4), 0.25)}
    >>> stampSnr(batch, 1).tolist()                     # sqrt(16 × 1 / 0.25)
    [8.0]
    """
    signal = batch["observedNoiseless"][:, band].double()
    variance = batch["variance"][:, band].double().clamp(min=1e-12)
    return (signal**2 / variance).sum(dim=(-2, -1)).sqrt().cpu().numpy()
