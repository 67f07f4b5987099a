r"""Validation metrics of exported models on held-out simulations (issue 4's acceptance numbers).

Three sets of numbers, all on the TorchScript artefacts exactly as they ship:

**VAE reconstruction** (IsolatedSims, validation split). The noisy isolated stamp
:math:`x` goes through the encoder; the decoder maps the posterior mean :math:`\mu(x)` to
:math:`\hat y`, compared with the noiseless stamp :math:`y` in one band :math:`b`:

.. math::

    \cos_b = \frac{\langle \hat y_b, y_b\rangle}{\lVert \hat y_b\rVert\,\lVert y_b\rVert},
    \qquad
    \frac{\delta F_b}{F_b} = \frac{\sum \hat y_b - \sum y_b}{\sum y_b}.

**Flow** (same stamps). :math:`\mathrm{NLL} = -\frac1N\sum_n \log p_\phi(z_n)`, nats per
galaxy, with :math:`z_n \sim q(z \mid x_n)` drawn from the encoder posterior as in training;
the same latents under :math:`\mathcal N(0, I)` give the reference a flow must beat.

**Single-pass VAE-deblender** (BlendedSims, validation split). The blended stamp centred on a
galaxy goes through the deblender encoder; the decoded posterior mean is compared with that
galaxy's noiseless isolated stamp, with the same two statistics (reported as mean and median
:math:`|\delta F/F|` and mean cosine similarity).

Posterior means make the numbers reproducible; flux sums run over the full 45×45 stamp.

References
----------
Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 3.2-3.4 (the networks), Sec. 5
(cosine similarity and relative flux error as accuracy measures).

Examples
--------
>>> import numpy as np
>>> truth = np.ones((2, 3, 3)); model = 1.1 * truth
>>> cosineSimilarity(model, truth).round(6).tolist(), relativeFluxError(model, truth).round(6).tolist()
([1.0, 1.0], [0.1, 0.1])
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from .export import MadnessModels
from .networks import sampleLatent

__all__ = [
    "cosineSimilarity",
    "relativeFluxError",
    "ReconstructionMetrics",
    "ValidationMetrics",
    "reconstructionMetrics",
    "evaluateModels",
    "predictStamps",
    "stackItems",
    "metricsMarkdown",
    "deadBands",
    "silentBands",
]


def cosineSimilarity(model: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Cosine similarity of each image pair, flattened over all but the first axis.

    Parameters
    ----------
    model, truth : `numpy.ndarray`
        (N, ...) images of the same shape.

    Returns
    -------
    cosine : `numpy.ndarray`
        (N,) float64 in [-1, 1]; 0 where either image is all zero.

    Examples
    --------
    >>> import numpy as np
    >>> cosineSimilarity(np.array([[1.0, 0.0], [1.0, 1.0]]), np.array([[0.0, 1.0], [2.0, 2.0]])).round(6).tolist()
    [0.0, 1.0]
    """
    a = model.reshape(len(model), -1).astype(np.float64)
    b = truth.reshape(len(truth), -1).astype(np.float64)
    norm = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, (a * b).sum(axis=1) / norm, 0.0)


def relativeFluxError(model: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(Σ model − Σ truth) / Σ truth of each image pair.

    Parameters
    ----------
    model, truth : `numpy.ndarray`
        (N, ...) images of the same shape.

    Returns
    -------
    error : `numpy.ndarray`
        (N,) float64 relative flux errors (infinite or NaN where the truth's flux is 0).

    Examples
    --------
    >>> import numpy as np
    >>> relativeFluxError(np.array([[1.0, 2.0]]), np.array([[2.0, 2.0]])).tolist()
    [-0.25]
    """
    modelFlux = model.reshape(len(model), -1).astype(np.float64).sum(axis=1)
    truthFlux = truth.reshape(len(truth), -1).astype(np.float64).sum(axis=1)
    return (modelFlux - truthFlux) / truthFlux


@dataclass(frozen=True)
class ReconstructionMetrics:
    """Agreement of decoded stamps with the noiseless truth in one band."""

    stamps: int
    band: str
    meanCosine: float
    medianCosine: float
    meanAbsFluxError: float
    medianAbsFluxError: float
    meanFluxError: float

    @classmethod
    def fromArrays(cls, model: np.ndarray, truth: np.ndarray, band: str) -> ReconstructionMetrics:
        """The metrics of decoded stamps against the truth in one band.

        Parameters
        ----------
        model, truth : `numpy.ndarray`
            (N, S, S) decoded and noiseless stamps of one band.
        band : `str`
            The band's name, recorded.

        Returns
        -------
        metrics : `ReconstructionMetrics`
            N, mean and median cosine similarity, mean and median absolute and mean signed relative
            flux error.

        Examples
        --------
        >>> import numpy as np
        >>> metrics = ReconstructionMetrics.fromArrays(1.1 * np.ones((2, 3, 3)), np.ones((2, 3, 3)), "r")
        >>> metrics.stamps, round(metrics.meanCosine, 6), round(metrics.meanFluxError, 6)
        (2, 1.0, 0.1)
        """
        cosine, flux = cosineSimilarity(model, truth), relativeFluxError(model, truth)
        return cls(len(model), band, float(cosine.mean()), float(np.median(cosine)), float(np.abs(flux).mean()),
                   float(np.median(np.abs(flux))), float(flux.mean()))


@dataclass(frozen=True)
class ValidationMetrics:
    """What :func:`evaluateModels` measures (see the module docstring)."""

    vae: ReconstructionMetrics
    flowNll: float
    standardNormalNll: float
    flowStamps: int
    deblender: ReconstructionMetrics
    isolatedData: dict
    blendedData: dict

    def toDict(self) -> dict[str, Any]:
        """The metrics as nested dicts (JSON-serialisable), as a model card's ``validation`` stores them.

        Returns
        -------
        metrics : `dict` [`str`, object]
            ``vae`` and ``deblender`` (dicts of :class:`ReconstructionMetrics`), ``flowNll``,
            ``standardNormalNll``, ``flowStamps``, ``isolatedData`` and ``blendedData``.

        Examples
        --------
        >>> import numpy as np
        >>> vae = ReconstructionMetrics.fromArrays(np.ones((2, 3, 3)), np.ones((2, 3, 3)), "r")
        >>> metrics = ValidationMetrics(vae, 20.0, 22.7, 2, vae, {}, {})
        >>> metrics.toDict()["vae"]["meanCosine"], metrics.toDict()["flowNll"]
        (1.0, 20.0)
        """
        return asdict(self)


def stackItems(data, indices: Sequence[int] | np.ndarray,
               keys: Sequence[str] = ("blended", "isolated")) -> dict[str, np.ndarray]:
    """Stacked float32 arrays of ``keys`` for items ``indices`` of a map-style data set.

    Parameters
    ----------
    data : map-style data set
        Indexable by integer, each item a dict of arrays (e.g. a
        :class:`~lsst.meas.extensions.madness.sim.shards.SimulationShards`, or a list of dicts).
    indices : sequence of `int` or `numpy.ndarray`
        The items to stack, in order.
    keys : sequence of `str`, optional
        The entries of each item to stack.

    Returns
    -------
    arrays : `dict` [`str`, `numpy.ndarray`]
        Per key, float32 (len(indices), ...).

    Examples
    --------
    >>> import numpy as np
    >>> data = [{"blended": np.ones((2, 3, 3)), "isolated": np.zeros((2, 3, 3))} for _ in range(5)]
    >>> {key: value.shape for key, value in stackItems(data, [0, 3]).items()}
    {'blended': (2, 2, 3, 3), 'isolated': (2, 2, 3, 3)}
    """
    items = [data[int(i)] for i in indices]
    return {key: np.stack([item[key] for item in items]).astype(np.float32) for key in keys}


def _batches(data, count: int, batchSize: int, keys: Sequence[str]):
    """:func:`stackItems` of the first ``count`` items, ``batchSize`` at a time."""
    for start in range(0, count, batchSize):
        yield stackItems(data, range(start, min(count, start + batchSize)), keys)


@torch.no_grad()
def predictStamps(models: MadnessModels, stamps: np.ndarray, which: str = "encoder") -> np.ndarray:
    """Decoded posterior means (electrons) of stamps (N, bands, S, S) in electrons.

    ``which`` is ``"encoder"`` (the VAE) or ``"deblenderEncoder"`` (single-pass deblending).

    Parameters
    ----------
    models : `~.export.MadnessModels`
        The loaded networks (models without a model frame: electrons over ``normalisation``).
    stamps : `numpy.ndarray`
        (N, bands, S, S) noisy stamps, electrons.
    which : `str`, optional
        The encoder: ``"encoder"`` or ``"deblenderEncoder"``.

    Returns
    -------
    decoded : `numpy.ndarray`
        (N, bands, S, S) float32, electrons.

    Examples
    --------
    >>> from lsst.meas.extensions.madness.testing import makeTinyModels
    >>> models = makeTinyModels("gr")                                 # untrained networks
    >>> rng = np.random.default_rng(0)
    >>> data = [{"blended": rng.random((2, 45, 45), np.float32), "isolated": rng.random((2, 45, 45), np.float32)}
    ...         for _ in range(4)]                               # four galaxies, bands g and r, in electrons
    >>> predictStamps(models, stackItems(data, range(4))["blended"], "deblenderEncoder").shape
    (4, 2, 45, 45)
    """
    encoder = getattr(models, which)
    x = torch.as_tensor(stamps, dtype=torch.float32) / models.normalisation
    mean, _ = encoder(x)
    return models.decode(mean).numpy() * models.normalisation


def deadBands(models: MadnessModels, stamps: np.ndarray, truth: np.ndarray, minFluxRatio: float = 0.1,
              which: str = "encoder") -> list[str]:
    """Bands in which the decoder draws (almost) nothing: the decoded flux of ``stamps`` (N, bands, S, S),
    summed over all of them, is below ``minFluxRatio`` times that of ``truth`` (the noiseless stamps).

    A band whose output channel died in training (its ReLU stuck at zero) has no model at all;
    metrics of one other band do not show it.

    Parameters
    ----------
    models : `~.export.MadnessModels`
        The loaded networks.
    stamps : `numpy.ndarray`
        (N, bands, S, S) noisy input stamps, electrons.
    truth : `numpy.ndarray`
        (N, bands, S, S) their noiseless stamps.
    minFluxRatio : `float`, optional
        Decoded over true total flux below which a band is dead.
    which : `str`, optional
        ``"encoder"`` or ``"deblenderEncoder"``.

    Returns
    -------
    bands : `list` [`str`]
        The dead bands, in the models' order.

    Examples
    --------
    >>> from lsst.meas.extensions.madness.testing import makeTinyModels
    >>> models = makeTinyModels("gr")                                 # untrained networks
    >>> rng = np.random.default_rng(0)
    >>> data = [{"blended": rng.random((2, 45, 45), np.float32), "isolated": rng.random((2, 45, 45), np.float32)}
    ...         for _ in range(4)]                               # four galaxies, bands g and r, in electrons
    >>> arrays = stackItems(data, range(4))
    >>> set(deadBands(models, arrays["blended"], arrays["isolated"])) <= {"g", "r"}
    True
    """
    return silentBands(predictStamps(models, stamps, which), truth, models.bands, minFluxRatio)


def silentBands(decoded: np.ndarray, truth: np.ndarray, bands: Sequence[str], minFluxRatio: float = 0.1) -> list[str]:
    """Bands whose decoded flux, summed over all stamps ``(N, bands, S, S)``, is below
    ``minFluxRatio`` times the truth's (the test behind :func:`deadBands`).

    Parameters
    ----------
    decoded, truth : `numpy.ndarray`
        (N, bands, S, S) decoded and noiseless stamps.
    bands : sequence of `str`
        The band names, in channel order.
    minFluxRatio : `float`, optional
        Decoded over true total flux below which a band is silent; bands without true flux never are.

    Returns
    -------
    bands : `list` [`str`]
        The silent bands, in channel order.

    Examples
    --------
    >>> import numpy as np
    >>> decoded = np.stack([np.zeros((3, 3)), np.ones((3, 3))])[None]        # (1, 2, 3, 3): g is empty
    >>> silentBands(decoded, np.ones((1, 2, 3, 3)), "gr")
    ['g']
    """
    got = np.asarray(decoded, dtype=np.float64).sum(axis=(0, 2, 3))
    want = np.asarray(truth, dtype=np.float64).sum(axis=(0, 2, 3))
    return [band for band, g, w in zip(bands, got, want) if w > 0 and g < minFluxRatio * w]


def reconstructionMetrics(models: MadnessModels, data, count: int, which: str, band: str = "r",
                          batchSize: int = 200, progress: bool = False) -> ReconstructionMetrics:
    """Cosine similarity and flux error of ``which`` encoder + decoder on ``count`` items of ``data``.

    Items have ``blended`` (the network input: the noisy stamp, isolated or blended) and
    ``isolated`` (the noiseless target).

    Parameters
    ----------
    models : `~.export.MadnessModels`
        The loaded networks.
    data : map-style data set
        Items with ``blended`` and ``isolated`` (bands, S, S) arrays in electrons; at least ``count``.
    count : `int`
        The first ``count`` items are measured.
    which : `str`
        ``"encoder"`` (VAE reconstruction) or ``"deblenderEncoder"`` (single-pass deblending).
    band : `str`, optional
        The band measured.
    batchSize : `int`, optional
        Stamps decoded at once.
    progress : `bool`, optional
        Show a progress bar.

    Returns
    -------
    metrics : `ReconstructionMetrics`
        Of the ``band`` plane of the decoded and noiseless stamps.

    Examples
    --------
    >>> from lsst.meas.extensions.madness.testing import makeTinyModels
    >>> models = makeTinyModels("gr")                                 # untrained networks
    >>> rng = np.random.default_rng(0)
    >>> data = [{"blended": rng.random((2, 45, 45), np.float32), "isolated": rng.random((2, 45, 45), np.float32)}
    ...         for _ in range(4)]                               # four galaxies, bands g and r, in electrons
    >>> metrics = reconstructionMetrics(models, data, count=4, which="encoder", band="r")
    >>> metrics.stamps, metrics.band, -1 <= metrics.meanCosine <= 1
    (4, 'r', True)
    """
    from tqdm.auto import tqdm

    b = models.bands.index(band)
    decoded, truths = [], []
    bar = tqdm(total=count, desc=f"{which} reconstructions", unit="stamp", disable=not progress)
    for batch in _batches(data, count, batchSize, ("blended", "isolated")):
        decoded.append(predictStamps(models, batch["blended"], which)[:, b])
        truths.append(batch["isolated"][:, b])
        bar.update(len(batch["blended"]))
    bar.close()
    return ReconstructionMetrics.fromArrays(np.concatenate(decoded), np.concatenate(truths), band)


@torch.no_grad()
def flowNll(models: MadnessModels, data, count: int, seed: int = 0, batchSize: int = 200) -> tuple[float, float]:
    """Mean −log p(z) of encoder latent samples under the flow and under N(0, I), nats."""
    generator = torch.Generator().manual_seed(seed)
    flowSum = normalSum = 0.0
    for batch in _batches(data, count, batchSize, ("blended",)):
        mean, scaleTril = models.encoder(torch.as_tensor(batch["blended"]) / models.normalisation)
        z = sampleLatent(mean, scaleTril, generator)
        flowSum += float(-models.logPrior(z).double().sum())
        normalSum += float((0.5 * (z.double() ** 2).sum(-1) + 0.5 * z.shape[-1] * math.log(2 * math.pi)).sum())
    return flowSum / count, normalSum / count


def _describe(data) -> dict:
    description = getattr(data, "description", None) or {}
    paths = getattr(data, "paths", None)
    out = {k: description[k] for k in ("kind", "split", "seed") if k in description}
    if paths:
        out["shards"] = len(paths)
    return out


def evaluateModels(models: MadnessModels, isolated, blended, count: int = 5000, band: str = "r",
                   seed: int = 0, progress: bool = False) -> ValidationMetrics:
    """All validation metrics of ``models`` on the first ``count`` galaxies of each data set.

    ``isolated`` and ``blended`` are map-style data sets of per-galaxy dicts (e.g.
    :class:`~lsst.meas.extensions.madness.sim.shards.SimulationShards` of the validation split).

    Parameters
    ----------
    models : `~.export.MadnessModels`
        The loaded networks.
    isolated : map-style data set
        IsolatedSims items: ``blended`` the noisy isolated stamp, ``isolated`` the noiseless one (electrons).
    blended : map-style data set
        BlendedSims items: ``blended`` the blended stamp centred on a galaxy, ``isolated`` that galaxy alone.
    count : `int`, optional
        Galaxies of each data set measured (the first ones).
    band : `str`, optional
        The band of the reconstruction metrics.
    seed : `int`, optional
        Seed of the latent samples of the flow's NLL.
    progress : `bool`, optional
        Show progress bars.

    Returns
    -------
    metrics : `ValidationMetrics`
        The VAE's and the VAE-deblender's reconstruction metrics, the flow's NLL and the standard normal's,
        and the data sets' descriptions.

    Raises
    ------
    ValueError
        If a data set holds fewer than ``count`` galaxies, or its bands differ from the models'.

    Examples
    --------
    >>> from lsst.meas.extensions.madness.testing import makeTinyModels
    >>> models = makeTinyModels("gr")                                 # untrained networks
    >>> rng = np.random.default_rng(0)
    >>> data = [{"blended": rng.random((2, 45, 45), np.float32), "isolated": rng.random((2, 45, 45), np.float32)}
    ...         for _ in range(4)]                               # four galaxies, bands g and r, in electrons
    >>> metrics = evaluateModels(models, data, data, count=4)
    >>> metrics.vae.stamps, metrics.deblender.stamps, metrics.flowStamps, math.isfinite(metrics.flowNll)
    (4, 4, 4, True)
    """
    for name, data in (("isolated", isolated), ("blended", blended)):
        if len(data) < count:
            raise ValueError(f"the {name} validation data hold {len(data)} galaxies; {count} were asked for")
        bands = (getattr(data, "description", None) or {}).get("bands")
        if bands is not None and list(bands) != list(models.bands):
            raise ValueError(f"the {name} validation data have bands {list(bands)}, the models {list(models.bands)}")
    vae = reconstructionMetrics(models, isolated, count, "encoder", band, progress=progress)
    nll, normal = flowNll(models, isolated, count, seed)
    deblender = reconstructionMetrics(models, blended, count, "deblenderEncoder", band, progress=progress)
    return ValidationMetrics(vae, nll, normal, count, deblender, _describe(isolated), _describe(blended))


def metricsMarkdown(metrics: dict[str, Any], command: str | None = None) -> str:
    """A Markdown table of a :meth:`ValidationMetrics.toDict` dict (as stored in a model card).

    Parameters
    ----------
    metrics : `dict` [`str`, object]
        :meth:`ValidationMetrics.toDict` (a model card's ``validation``).
    command : `str`, optional
        The command that measured them, shown in a bash block above the table.

    Returns
    -------
    table : `str`
        Markdown, ending in a newline.

    Examples
    --------
    >>> import numpy as np
    >>> vae = ReconstructionMetrics.fromArrays(np.ones((2, 3, 3)), np.ones((2, 3, 3)), "r")
    >>> table = metricsMarkdown(ValidationMetrics(vae, 20.0, 22.7, 2, vae, {}, {}).toDict())
    >>> table.splitlines()[:2]
    ['| quantity | data | value |', '|---|---|---|']
    """
    vae, deb = metrics["vae"], metrics["deblender"]
    band = vae["band"]
    lines = []
    if command:
        lines += ["Measured by", "", "```bash", command, "```", ""]
    lines += [
        "| quantity | data | value |",
        "|---|---|---|",
        f"| VAE reconstruction, {band}-band mean cosine similarity | {vae['stamps']} IsolatedSims (validation) "
        f"| {vae['meanCosine']:.4f} (median {vae['medianCosine']:.4f}) |",
        f"| VAE reconstruction, {band}-band mean \\|δF/F\\| | same | {vae['meanAbsFluxError']:.4f} "
        f"(median {vae['medianAbsFluxError']:.4f}; mean δF/F {vae['meanFluxError']:+.4f}) |",
        f"| flow NLL, −mean log p(z), nats | same, z ~ q(z\\|x) | {metrics['flowNll']:.3f} "
        f"(N(0, I): {metrics['standardNormalNll']:.3f}) |",
        f"| single-pass VAE-deblender, {band}-band mean \\|δF/F\\| | {deb['stamps']} BlendedSims (validation) "
        f"| {deb['meanAbsFluxError']:.4f} (median {deb['medianAbsFluxError']:.4f}; mean δF/F "
        f"{deb['meanFluxError']:+.4f}) |",
        f"| single-pass VAE-deblender, {band}-band mean cosine similarity | same | {deb['meanCosine']:.4f} "
        f"(median {deb['medianCosine']:.4f}) |",
    ]
    return "\n".join(lines) + "\n"
