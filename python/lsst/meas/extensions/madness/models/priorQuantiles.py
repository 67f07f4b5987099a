r"""Where a child's log-prior falls among the isolated galaxies the models learnt.

The flow gives every latent a log-density :math:`\log p(z)`. Its value alone is hard to read
(its scale depends on the networks), so the deblender reports it as a quantile of the
distribution of :math:`\log p(\mu(x))` over held-out isolated galaxies :math:`x`, where
:math:`\mu` is the VAE encoder's posterior mean: the galaxies the models describe well. A
child whose latent is rarer than 0.1 % of those galaxies (``madness_lowPrior``) is one the models
find implausible: typically a source the fit stretched to explain light its neighbours' models
leave, or an object unlike any training galaxy.

The table is computed once per model set, at the end of budget training or with
``madness-models prior-quantiles``, and stored in the model card as ``logPriorQuantiles``:
:data:`LEVELS` and the log-prior at each level, the lowest level being the sample's minimum.

References
----------
Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 3.3 (the flow prior) and the discussion (the final log-prior
as a flag of unrecognised blends).

Examples
--------
>>> import numpy as np
>>> table = quantileTable(np.arange(1000.0), source="example")
>>> priorQuantile(np.array([-5.0, 0.5, 499.5, 2000.0]), table).round(4).tolist()
[0.0, 0.0005, 0.5, 1.0]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch

__all__ = ["LEVELS", "MIN_GALAXIES", "logPriorQuantiles", "priorQuantile", "quantileTable"]

#: Quantile levels of the table: a fine grid in the low tail (where the flag's threshold lies),
#: coarser above. 0 stands for the sample's minimum.
LEVELS: tuple[float, ...] = (0.0, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5,
                             0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)

#: Fewest galaxies of a table: fewer cannot place its 1 % tail.
MIN_GALAXIES = 100


def quantileTable(logPrior: np.ndarray, source: str) -> dict:
    """The card entry of a sample of log-priors: :data:`LEVELS`, their values, the sample size and its source.

    Parameters
    ----------
    logPrior : `numpy.ndarray`
        The log-priors of held-out isolated galaxies (non-finite values are dropped).
    source : `str`
        What the galaxies were, stored with the table.

    Returns
    -------
    table : `dict`
        ``levels`` (:data:`LEVELS`), ``values`` (the log-prior at each level), ``galaxies`` (the finite
        sample's size) and ``source``.

    Raises
    ------
    ValueError
        If the sample holds fewer than 100 finite values (too few to place a 1 % tail).

    Examples
    --------
    >>> import numpy as np
    >>> table = quantileTable(np.linspace(-30.0, -10.0, 101), source="example")
    >>> table["galaxies"], table["values"][0], table["values"][LEVELS.index(0.5)], table["values"][-1]
    (101, -30.0, -20.0, -10.0)
    """
    values = np.asarray(logPrior, float)
    values = values[np.isfinite(values)]
    if len(values) < MIN_GALAXIES:
        raise ValueError(f"{len(values)} finite log-priors: at least {MIN_GALAXIES} are needed for a quantile table")
    return {"levels": list(LEVELS), "values": [float(v) for v in np.quantile(values, LEVELS)],
            "galaxies": int(len(values)), "source": source}


def priorQuantile(logPrior: np.ndarray, table: dict) -> np.ndarray:
    """The quantile of each log-prior in ``table`` (:func:`quantileTable`), interpolated linearly.

    Below the sample's minimum gives 0, above its maximum 1; NaN stays NaN.

    Parameters
    ----------
    logPrior : `numpy.ndarray`
        Log-priors of any shape (the children's ``madness_logPrior``).
    table : `dict`
        The card's ``logPriorQuantiles`` (:func:`quantileTable`).

    Returns
    -------
    quantile : `numpy.ndarray`
        The same shape, in [0, 1] (NaN where ``logPrior`` is not finite).

    Examples
    --------
    >>> import numpy as np
    >>> table = quantileTable(np.linspace(-30.0, -10.0, 101), source="example")
    >>> priorQuantile(np.array([-40.0, -20.0, np.nan]), table).tolist()
    [0.0, 0.5, nan]
    """
    values = np.asarray(table["values"], float)
    levels = np.asarray(table["levels"], float)
    logPrior = np.asarray(logPrior, float)
    out = np.interp(logPrior, values, levels, left=0.0, right=1.0)
    return np.where(np.isfinite(logPrior), out, np.nan)


@torch.no_grad()
def logPriorQuantiles(encoder: Callable[[torch.Tensor], tuple[torch.Tensor, ...]],
                      logPrior: Callable[[torch.Tensor], torch.Tensor], stamps: Iterable[torch.Tensor],
                      source: str) -> dict:
    r"""The quantile table of :math:`\log p(\mu(x))` over the isolated galaxies ``stamps``.

    Parameters
    ----------
    encoder : callable
        The VAE encoder: stamps in its input units to (posterior mean, ...).
    logPrior : callable
        Latents to their flow log-density, in the coordinates the encoder gives.
    stamps : iterable of `torch.Tensor`
        Batches (N, bands, S, S) of noisy isolated galaxies as the encoder was trained on.
    source : `str`
        What the galaxies were (stored with the table).

    Returns
    -------
    table : `dict`
        :func:`quantileTable` of the log-priors.

    Raises
    ------
    ValueError
        If the stamps hold fewer than 100 galaxies of finite log-prior.

    Examples
    --------
    >>> from lsst.meas.extensions.madness.models import Encoder, ModelConfig, makeFlow
    >>> config = ModelConfig.fromProfile("tiny")
    >>> flow = makeFlow(config)
    >>> batches = [torch.rand(60, 6, 45, 45), torch.rand(60, 6, 45, 45)]
    >>> table = logPriorQuantiles(Encoder(config), lambda z: flow().log_prob(z), batches, source="random stamps")
    >>> table["galaxies"], len(table["values"]) == len(LEVELS), table["source"]
    (120, True, 'random stamps')
    """
    values = [logPrior(encoder(batch)[0]).double().cpu().numpy() for batch in stamps]
    return quantileTable(np.concatenate(values), source)
