r"""The MAP step size of a model set, chosen on validation blends and stored in its model card.

The Adam step in latent space that converges within the iteration cap depends on how the
networks map latents to pixels: a decoder that changes faster per latent unit needs smaller
steps, and a step that is too large walks into latents that fit the blend with wrong shapes.
So each model set carries its own step size: :func:`tuneMapLearningRate` deblends the same
blends of the *validation* split (never the benchmark's test fields) with each candidate, scores
every child by its model flux against the galaxy's noiseless isolated flux in every band,

.. math:: s = \frac{1}{B} \sum_b \big\langle \min(|F_b^{\rm model}/F_b^{\rm true} - 1|, 1) \big\rangle_{\rm children},

and writes the best candidate to the card (``map.lr``, with every candidate's scores). Scores
within :data:`SCORE_TIE` of the best are ties, and of those the candidate that took the fewest
seconds wins (:func:`chooseLearningRate`): a batch of blends runs until its slowest blend stops, so
a step that converges no better but oscillates longer costs its whole batch (on the shipped
weights 0.05 scored 0.3156 and 0.02 0.3164, and 0.05 made the deblender 2.6 times slower per field).
:class:`~lsst.meas.extensions.madness.deblend.MadnessDeblendTask` uses it unless its ``lr`` is set.

References
----------
Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 3.5 (MAP by gradient descent in latent space).
Kingma & Ba 2015, ICLR, "Adam: a method for stochastic optimization".

Example
-------
::

    madness-models tune-map runs/cpu2/models --lrs 0.01 0.02 0.05 0.1 --scenes 40
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = ["DEFAULT_CANDIDATES", "SCORE_TIE", "chooseLearningRate", "tuneMapLearningRate"]

#: Candidate Adam step sizes, a factor of about 2 apart.
DEFAULT_CANDIDATES: tuple[float, ...] = (0.01, 0.02, 0.05, 0.1)

#: Scores within this fraction of the best are ties (then the fastest candidate wins).
SCORE_TIE = 0.01


def chooseLearningRate(scores: dict[str, dict], tie: float = SCORE_TIE) -> float:
    """The candidate of ``scores`` (by step size as a string: ``score`` and ``seconds`` each) with the
    fewest seconds among those whose score is within ``tie`` of the best.

    Parameters
    ----------
    scores : `dict` [`str`, `dict`]
        Per candidate step size (as a string), its record with at least ``score`` (lower is better) and
        ``seconds``.
    tie : `float`, optional
        Relative margin of the best score within which candidates tie.

    Returns
    -------
    lr : `float`
        The chosen step size.

    Examples
    --------
    >>> chooseLearningRate({"0.02": {"score": 0.3164, "seconds": 29}, "0.05": {"score": 0.3156, "seconds": 36},
    ...                     "0.1": {"score": 0.3446, "seconds": 53}})
    0.02
    """
    best = min(s["score"] for s in scores.values())
    ties = [lr for lr, s in scores.items() if s["score"] <= best * (1 + tie)]
    return float(min(ties, key=lambda lr: (scores[lr]["seconds"], scores[lr]["score"])))


def tuneMapLearningRate(directory: str | os.PathLike, candidates: Sequence[float] = DEFAULT_CANDIDATES,
                        nScenes: int = 40, seed: int = 21, device: str = "auto", write: bool = True,
                        progress=print) -> dict:
    """Score each step size of ``candidates`` on ``nScenes`` validation blends; store the best.

    Parameters
    ----------
    directory
        Exported model directory (its card gets ``map`` when ``write``).
    candidates
        Adam learning rates to try (each > 0).
    nScenes
        BlendedSims scenes of 2-3 galaxies from the validation split.
    seed
        Seed of those scenes.
    device
        Torch device of the MAP fits.
    write
        Store the choice in the model card.
    progress
        Called with one line per candidate (None: silent).

    Returns
    -------
    dict
        ``lr`` (the choice), ``scores`` per candidate (:func:`~..benchmark.mapSettings.scoreSetting`'s
        record), ``split``, ``scenes``, ``seed`` and ``criterion``.

    Raises
    ------
    ValueError
        No candidate, a candidate ≤ 0, or ``nScenes`` < 1.

    Examples
    --------
    Each candidate deblends the validation scenes (about 10 s for one scene and one candidate with the
    tiny profile on a CPU), so this is shown rather than run; ``directory`` holds exported models:

    .. code-block:: python

        record = tuneMapLearningRate(directory, candidates=(0.02, 0.05), nScenes=40, device="cpu")
        record["lr"], sorted(record["scores"])   # e.g. (0.05, ['0.02', '0.05']); the card's map.lr is set
    """
    from ..benchmark.mapSettings import populationBlends, scoreSetting
    from .export import updateModelCard

    if not candidates or min(candidates) <= 0:
        raise ValueError(f"candidates must be positive learning rates, got {list(candidates)}")
    if nScenes < 1:
        raise ValueError(f"nScenes must be at least 1, got {nScenes}")
    blends = list(populationBlends(nScenes, seed=seed, split="validation"))
    scores = {}
    for lr in candidates:
        scores[str(lr)] = scoreSetting(blends, dict(modelDir=str(directory), device=device, lr=float(lr)))
        if progress is not None:
            s = scores[str(lr)]
            progress(f"lr {lr:g}: score {s['score']:.4f}, r mean |dF/F| {s['mean']:.4f}, "
                     + ", ".join(f"{b} {v:.3f}" for b, v in s["perBand"].items())
                     + f"; {s['iterations']:.0f} steps, {s['seconds']:.0f} s")
    best = chooseLearningRate(scores)
    record = {"lr": best, "split": "validation", "scenes": int(nScenes), "seed": int(seed),
              "criterion": "mean over bands of the mean capped |F_model/F_true - 1| of the children; "
                           f"scores within {SCORE_TIE:.0%} of the best tie, the fastest of them wins",
              "scores": scores}
    if write:
        updateModelCard(Path(directory), map=record)
    return record
