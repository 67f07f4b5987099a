r"""Shapes from the latent space: a small network from a galaxy's latent to its ellipticity.

MADNESS measures a child's shape on its model: adaptive moments of the decoded image
(:mod:`~..deblend.uncertainty`). The decoder, however, draws a galaxy it is unsure of rounder than it
is (the KL term and the prior pull uncertain latents towards typical, round galaxies, and a decoder
that cannot draw a shape draws an average one), so the shapes measured on decoded images are biased
towards :math:`e = 0`. Nguyen (2025) regresses the ellipticity on the encoder's posterior mean
instead, with a multilayer perceptron, and finds less of that bias. This module does the same for
the package's models.

The regressor :math:`f_\theta` maps a latent :math:`z \in \mathbb R^{16}` to the r-band distortion

.. math::

    e = e_1 + i e_2 = \frac{Q_{xx} - Q_{yy} + 2 i Q_{xy}}{Q_{xx} + Q_{yy}}

of the galaxy **in the model frame** (its noiseless r-band image on 0.2″ pixels through the 0.35″
Gaussian model PSF, :class:`~.config.ModelFrame`), :math:`Q` its adaptive second moments
(:func:`~..benchmark.morphology.ellipticity`, galsim HSM, the benchmark's shape measurement). The
network is

.. math::

    f_\theta(z) = \tanh\!\Big(W_4\,\phi_3\big(W_3\,\phi_2(W_2\,\phi_1(W_1 \hat z + b_1) + b_2) + b_3\big) + b_4\Big),
    \qquad \hat z = (z - \bar z) / s_z,

16 → 128 → 64 → 32 → 2 with PReLU activations :math:`\phi_k`, dropout after each hidden layer in
training only, and a tanh output (distortions lie in :math:`(-1, 1)`); :math:`\bar z, s_z` are the
training latents' mean and standard deviation per axis, stored in the network, so that it takes the
encoder's latents as they are. It is trained by Adam on the mean squared error
:math:`\tfrac12\langle |f_\theta(z) - e|^2\rangle` with early stopping on a validation set.

Training data (:func:`~.shapeRegressorBuild.shapeTrainingSample`): isolated galaxies of the
population the models were trained on (:mod:`.isolatedGalaxies`), observed through random PSFs with
LSST 10-year noise; the input is the VAE encoder's posterior mean on the noisy observed stamp
(where the MAP fit starts), the target the adaptive-moments distortion of the noiseless model-frame
r-band image. Galaxies whose moments fail (HSM error, non-positive weighted flux) are dropped and
counted.

``madness-models shape-regressor`` (:func:`~.shapeRegressorBuild.buildShapeRegressor`, with the
training data, in :mod:`.shapeRegressorBuild`) trains one for a model directory and stores it as the
TorchScript file ``shape_regressor.pt`` with a ``shapeRegressor`` entry in the model card
(:func:`exportShapeRegressor`); it is optional: model directories without it load and deblend as
before, and :func:`loadShapeRegressor` returns None for them. ``madness-bench shapes``
(:mod:`~..benchmark.shapes`) compares its shapes with adaptive moments on the decoded image.

References
----------
Nguyen, T. Y. B. 2025, M1 internship report (APC, Paris), "Inference of Weak Lensing Parameters
from Blended Galaxies Using Generative Neural Networks", Sec. 3.2 (the regressor) and 4.3.
Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 4.4, Eq. 18 (the ellipticity).
Hirata & Seljak 2003, MNRAS 343, 459 (adaptive moments).
He et al. 2015, ICCV, "Delving deep into rectifiers" (PReLU).

Examples
--------
A regressor trained on a synthetic map from 16-d latents to shapes learns it:

>>> import torch
>>> generator = torch.Generator().manual_seed(0)
>>> z = torch.randn(1200, 16, generator=generator)
>>> e = 0.5 * torch.tanh(z[:, :2])
>>> result = trainShapeRegressor(z[:1000], e[:1000], z[1000:], e[1000:],
...                              ShapeTrainingConfig(maxEpochs=40, seed=1))
>>> bool(max(result.validationRmse) < 0.1), predictShapes(result.model, z[:3]).shape
(True, (3, 2))
"""

from __future__ import annotations

import copy
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

# The training data and the build command live in .shapeRegressorBuild; imported here too, where they always were.
from .shapeRegressorBuild import buildShapeRegressor as buildShapeRegressor
from .shapeRegressorBuild import modelFrameShapes as modelFrameShapes
from .shapeRegressorBuild import shapeTrainingSample as shapeTrainingSample

__all__ = [
    "CARD_KEY",
    "SHAPE_REGRESSOR_FILE",
    "ShapeRegressor",
    "ShapeTrainingConfig",
    "ShapeTrainingResult",
    "exportShapeRegressor",
    "loadShapeRegressor",
    "predictShapes",
    "trainShapeRegressor",
]

#: File name of the exported regressor in a model directory.
SHAPE_REGRESSOR_FILE = "shape_regressor.pt"
#: Model-card entry that describes it.
CARD_KEY = "shapeRegressor"


class ShapeRegressor(torch.nn.Module):
    r"""The MLP :math:`z \mapsto (e_1, e_2)` of the module docstring.

    Parameters
    ----------
    latentDim : `int`
        Size of the latents (16 for the package's models).
    hidden : `tuple` [`int`, ...]
        Widths of the hidden layers (default 128, 64, 32, Nguyen 2025).
    dropout : `float`
        Dropout probability after each hidden layer, in training mode only.
    mean, std : `torch.Tensor`, optional
        Per-axis mean and standard deviation of the training latents (:math:`\bar z`, :math:`s_z`);
        default 0 and 1.
    """

    if TYPE_CHECKING:  # buffers; not class annotations at run time, which torch.jit would read
        mean: torch.Tensor
        std: torch.Tensor

    def __init__(self, latentDim: int = 16, hidden: Sequence[int] = (128, 64, 32), dropout: float = 0.1,
                 mean: torch.Tensor | None = None, std: torch.Tensor | None = None):
        super().__init__()
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.register_buffer("mean", torch.zeros(latentDim) if mean is None else torch.as_tensor(mean).float())
        self.register_buffer("std", torch.ones(latentDim) if std is None else torch.as_tensor(std).float())
        layers: list[torch.nn.Module] = []
        width = latentDim
        for units in hidden:
            layers += [torch.nn.Linear(width, units), torch.nn.PReLU(units), torch.nn.Dropout(dropout)]
            width = units
        layers += [torch.nn.Linear(width, 2), torch.nn.Tanh()]
        self.net = torch.nn.Sequential(*layers)

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        """Distortions (N, 2) of latents (N, latentDim).

        Parameters
        ----------
        latent : `torch.Tensor`
            (N, latentDim) latents as the encoder gives them.

        Returns
        -------
        shapes : `torch.Tensor`
            (N, 2) :math:`(e_1, e_2)`, each in (-1, 1).

        Examples
        --------
        >>> import torch
        >>> shapes = ShapeRegressor(16).eval()(torch.randn(4, 16))
        >>> tuple(shapes.shape), bool((shapes.abs() < 1).all())
        ((4, 2), True)
        """
        return self.net((latent - self.mean) / self.std)


@dataclass(frozen=True)
class ShapeTrainingConfig:
    """How :func:`trainShapeRegressor` trains.

    Attributes
    ----------
    hidden, dropout
        The network (:class:`ShapeRegressor`).
    lr, batchSize, weightDecay
        Adam's learning rate, mini-batch size and L2 weight decay.
    maxEpochs, patience
        At most ``maxEpochs`` passes; stop after ``patience`` epochs without a lower validation loss
        and keep the best epoch's weights.
    lrPatience, lrFactor
        Multiply the learning rate by ``lrFactor`` after ``lrPatience`` epochs without improvement.
    seed
        Seed of the initial weights, the batch order and the dropout.
    """

    hidden: tuple[int, ...] = (128, 64, 32)
    dropout: float = 0.1
    lr: float = 1e-3
    batchSize: int = 256
    weightDecay: float = 0.0
    maxEpochs: int = 300
    patience: int = 20
    lrPatience: int = 6
    lrFactor: float = 0.5
    seed: int = 0


@dataclass
class ShapeTrainingResult:
    """A trained regressor (best validation epoch, evaluation mode) and how it got there."""

    model: ShapeRegressor
    validationRmse: tuple[float, float]  # RMSE of e1 and e2 on the validation set
    bestEpoch: int
    epochs: int
    seconds: float
    history: list[dict] = field(default_factory=list)  # per epoch: train and validation loss, lr


def _asTensor(values) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values) if not torch.is_tensor(values) else values).float().cpu()


def trainShapeRegressor(trainLatents, trainShapes, valLatents, valShapes,
                        config: ShapeTrainingConfig = ShapeTrainingConfig(),
                        progress: Callable[[str], None] | None = None) -> ShapeTrainingResult:
    r"""Train a :class:`ShapeRegressor` on CPU: Adam on the mean squared error, early stopping on validation.

    Parameters
    ----------
    trainLatents, valLatents : array_like
        Latents (N, D) of the training and validation galaxies.
    trainShapes, valShapes : array_like
        Their distortions (N, 2), finite.
    config : `ShapeTrainingConfig`
        Network and optimisation settings, seed included: the same inputs and config give the same
        network.
    progress : callable, optional
        Called with a line every 10 epochs.

    Returns
    -------
    result : `ShapeTrainingResult`
        The weights of the epoch with the lowest validation loss, and the RMSE of :math:`e_1` and
        :math:`e_2` there.

    Raises
    ------
    ValueError
        Shapes that do not match, non-finite values, or fewer than 2 galaxies in a set.

    Examples
    --------
    Three epochs on 50 synthetic galaxies (see the module docstring for one that learns):

    >>> import torch
    >>> z = torch.randn(60, 16, generator=torch.Generator().manual_seed(0))
    >>> e = 0.5 * torch.tanh(z[:, :2])
    >>> result = trainShapeRegressor(z[:50], e[:50], z[50:], e[50:], ShapeTrainingConfig(maxEpochs=3))
    >>> result.epochs, len(result.history), len(result.validationRmse)
    (3, 3, 2)
    """
    xTrain, yTrain, xVal, yVal = (_asTensor(a) for a in (trainLatents, trainShapes, valLatents, valShapes))
    for name, x, y in (("training", xTrain, yTrain), ("validation", xVal, yVal)):
        if x.ndim != 2 or y.shape != (len(x), 2) or len(x) < 2:
            raise ValueError(f"{name} set: latents must be (N, D) and shapes (N, 2) with N >= 2, got "
                             f"{tuple(x.shape)} and {tuple(y.shape)}")
        if not (torch.isfinite(x).all() and torch.isfinite(y).all()):
            raise ValueError(f"{name} set: latents and shapes must be finite (drop the galaxies whose moments failed)")
    if xVal.shape[1] != xTrain.shape[1]:
        raise ValueError(f"training latents have {xTrain.shape[1]} dimensions, validation latents {xVal.shape[1]}")
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        std = xTrain.std(dim=0).clamp(min=1e-6)
        model = ShapeRegressor(xTrain.shape[1], config.hidden, config.dropout, xTrain.mean(dim=0), std)
        optimiser = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weightDecay)
        scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimiser, factor=config.lrFactor,
                                                               patience=config.lrPatience)
        order = torch.Generator().manual_seed(config.seed)
        best, bestState, bestEpoch, history = math.inf, copy.deepcopy(model.state_dict()), 0, []
        for epoch in range(1, config.maxEpochs + 1):
            model.train()
            total = 0.0
            for batch in torch.randperm(len(xTrain), generator=order).split(config.batchSize):
                optimiser.zero_grad()
                loss = torch.nn.functional.mse_loss(model(xTrain[batch]), yTrain[batch])
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(batch)
            model.eval()
            with torch.no_grad():
                valLoss = float(torch.nn.functional.mse_loss(model(xVal), yVal))
            scheduler.step(valLoss)
            history.append({"epoch": epoch, "train": total / len(xTrain), "validation": valLoss,
                            "lr": optimiser.param_groups[0]["lr"]})
            if valLoss < best:
                best, bestState, bestEpoch = valLoss, copy.deepcopy(model.state_dict()), epoch
            if progress is not None and epoch % 10 == 0:
                progress(f"epoch {epoch}: train MSE {history[-1]['train']:.5f}, validation MSE {valLoss:.5f}")
            if epoch - bestEpoch >= config.patience:
                break
    model.load_state_dict(bestState)
    model.eval()
    with torch.no_grad():
        rmse = (model(xVal) - yVal).pow(2).mean(dim=0).sqrt().tolist()
    return ShapeTrainingResult(model, (float(rmse[0]), float(rmse[1])), bestEpoch, len(history),
                               time.perf_counter() - start, history)


@torch.no_grad()
def predictShapes(regressor: torch.nn.Module, latents) -> np.ndarray:
    """The regressor's distortions (N, 2) of latents (N, D), in evaluation mode (no dropout), as numpy.

    Parameters
    ----------
    regressor : `torch.nn.Module`
        A :class:`ShapeRegressor` or its TorchScript (:func:`loadShapeRegressor`); put in evaluation mode.
    latents : array_like
        (N, D) latents, a tensor or an array.

    Returns
    -------
    shapes : `numpy.ndarray`
        (N, 2) float64 :math:`(e_1, e_2)`.

    Examples
    --------
    >>> import numpy as np
    >>> predictShapes(ShapeRegressor(16), np.zeros((3, 16))).shape
    (3, 2)
    """
    regressor.eval()
    parameter = next(iter(regressor.buffers()), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    return regressor(torch.as_tensor(np.asarray(latents) if not torch.is_tensor(latents) else latents,
                                     dtype=torch.float32, device=device)).double().cpu().numpy()

def _fileEntry(path: Path) -> dict:
    from .modelCard import sha256

    return {"path": path.name, "sha256": sha256(path), "bytes": path.stat().st_size}


def exportShapeRegressor(model: torch.nn.Module, directory: str | os.PathLike, record: Mapping | None = None) -> Path:
    """Write ``model`` as TorchScript ``shape_regressor.pt`` in the model directory ``directory`` and
    describe it in the card's ``shapeRegressor`` entry: ``record`` plus the file's path, SHA-256 and size.

    The other networks and the card's other entries are left as they are. Returns the file's path.

    Parameters
    ----------
    model : `torch.nn.Module`
        The trained :class:`ShapeRegressor` (copied, scripted on the CPU in evaluation mode).
    directory : `str` or `os.PathLike`
        An exported model directory.
    record : mapping, optional
        What to say of it in the card (architecture, data, training, metrics).

    Returns
    -------
    path : `pathlib.Path`
        ``directory / "shape_regressor.pt"``.

    Examples
    --------
    >>> import tempfile
    >>> from lsst.meas.extensions.madness.models import loadModels
    >>> from lsst.meas.extensions.madness.testing import makeTinyModels
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = makeTinyModels(directory=tmp)                           # an untrained model directory
    ...     path = exportShapeRegressor(ShapeRegressor(16), tmp, {"note": "untrained"})
    ...     path.name, loadModels(tmp).card[CARD_KEY]["note"]
    ('shape_regressor.pt', 'untrained')
    """
    from .modelCard import updateModelCard

    directory = Path(directory)
    path = directory / SHAPE_REGRESSOR_FILE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, still the package's format
        scripted = torch.jit.script(copy.deepcopy(model).cpu().eval())
    scripted.save(str(path))
    updateModelCard(directory, **{CARD_KEY: {**dict(record or {}), "file": _fileEntry(path)}})
    return path


def loadShapeRegressor(models, device: str | torch.device = "cpu") -> torch.jit.ScriptModule | None:
    """The shape regressor of a model directory (a path, or loaded :class:`~.export.MadnessModels`), or
    None when its card has no ``shapeRegressor`` entry: the regressor is optional.

    Raises
    ------
    FileNotFoundError
        The card describes a regressor whose file is missing.
    ModelCardError
        Its SHA-256 differs from the card's, it is not TorchScript, or it does not take the card's
        latents to (N, 2) shapes.

    Parameters
    ----------
    models : `str`, `os.PathLike` or `~.export.MadnessModels`
        The model directory, or its loaded models.
    device : `str` or `torch.device`, optional
        Where the regressor is loaded.

    Returns
    -------
    regressor : `torch.jit.ScriptModule` or None
        In evaluation mode: latents (N, D) → shapes (N, 2); None without a ``shapeRegressor`` card entry.

    Examples
    --------
    >>> import tempfile
    >>> from lsst.meas.extensions.madness.testing import makeTinyModels
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = makeTinyModels(directory=tmp)                           # an untrained model directory
    ...     before = loadShapeRegressor(tmp)
    ...     _ = exportShapeRegressor(ShapeRegressor(16), tmp)
    ...     regressor = loadShapeRegressor(tmp)
    >>> before is None, tuple(regressor(torch.zeros(3, 16)).shape)
    (True, (3, 2))
    """
    from .modelCard import CARD_NAME, ModelCardError, _readCard, sha256

    if isinstance(models, (str, os.PathLike)):
        directory, card = Path(models), _readCard(Path(models))
    else:
        directory, card = Path(models.directory), models.card
    entry = card.get(CARD_KEY)
    if not entry:
        return None
    fileEntry = entry.get("file") or {}
    path = directory / fileEntry.get("path", SHAPE_REGRESSOR_FILE)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing shape regressor (described in {directory / CARD_NAME}); "
                                "run `madness-models shape-regressor` or remove the card's shapeRegressor entry")
    digest = sha256(path)
    if digest != fileEntry.get("sha256"):
        raise ModelCardError(f"{path}: sha256 {digest} differs from the model card's {fileEntry.get('sha256')}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            regressor = torch.jit.load(str(path), map_location=device).eval()
        with torch.no_grad():
            out = regressor(torch.zeros(1, int(card["latentDim"]), device=device))
    except RuntimeError as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise ModelCardError(f"{path}: not a shape regressor for {card['latentDim']}-d latents ({first})") from None
    if tuple(out.shape) != (1, 2):
        raise ModelCardError(f"{path}: gives shapes {tuple(out.shape[1:])} per latent, not (2,)")
    return regressor
