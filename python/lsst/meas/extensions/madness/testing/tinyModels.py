"""Untrained tiny networks, exported and loaded: models for examples and tests that load in milliseconds."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from ..models import MadnessModels

__all__ = ["makeTinyModels"]


def makeTinyModels(bands: str | Sequence[str] = "ugrizy", *, modelFrame: bool = False,
                   conditions: Mapping[str, Any] | None = None, seed: int | None = 0,
                   device: str | torch.device = "cpu",
                   directory: str | os.PathLike | None = None) -> MadnessModels:
    """Untrained networks of the ``"tiny"`` profile (a few thousand parameters), exported with
    :func:`~..models.export.exportModels` and loaded with :func:`~..models.export.loadModels`.

    For docstring examples and tests that need loaded models but not trained ones: shapes, units,
    plumbing. The networks are built in the order encoder, decoder, flow, deblender encoder after
    seeding torch's global generator, so a seed gives the same networks every time.

    Parameters
    ----------
    bands : `str` or sequence of `str`, optional
        The bands, in order (``"gr"`` or ``("g", "r")``).
    modelFrame : `bool`, optional
        Give the networks the survey's model frame (``ModelFrame.forSurvey(bands)``): models that
        draw galaxies as observed, in nJy, as budget training exports them.
    conditions : mapping, optional
        The card's survey conditions; None: ``LSST_CONDITIONS.model_dump()`` for models with a model
        frame (which need them), none otherwise.
    seed : `int` or None, optional
        Seed given to ``torch.manual_seed`` before the networks are built (so it also sets the
        global generator's state after the call); None: torch's generator is left as it is.
    device : `str` or `torch.device`, optional
        Where the networks are loaded.
    directory : `str` or `os.PathLike`, optional
        Where the models are exported (created if missing; its model files are overwritten) and stay.
        None: a temporary directory, removed once the models are loaded (the TorchScript networks and
        the card live in memory; ``models.directory`` then no longer exists).

    Returns
    -------
    models : `~..models.export.MadnessModels`
        The loaded untrained models: stamps of 45 pixels, 16 latent dimensions.

    Examples
    --------
    >>> import torch
    >>> models = makeTinyModels("gr")
    >>> models.bands, models.stampSize, tuple(models.decode(torch.zeros(1, 16)).shape)
    (('g', 'r'), 45, (1, 2, 45, 45))
    >>> frame = makeTinyModels("gr", modelFrame=True)
    >>> frame.modelFrame is not None, "surveyConditions" in frame.card
    (True, True)
    >>> again = makeTinyModels("gr")
    >>> torch.equal(again.decode(torch.ones(1, 16)), models.decode(torch.ones(1, 16)))
    True

    With ``directory``, the exported models stay there:

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     kept = makeTinyModels(directory=tmp)
    ...     (kept.directory / "model_card.json").is_file(), kept.bands
    (True, ('u', 'g', 'r', 'i', 'z', 'y'))
    """
    # Imported here: the testing package is imported where zuko (the flow's) must not be.
    from ..models import Decoder, Encoder, ModelConfig, ModelFrame, exportModels, loadModels, makeFlow
    from ..sim.survey import LSST_CONDITIONS

    bandTuple = tuple(bands)
    overrides: dict[str, Any] = {"bands": bandTuple}
    if modelFrame:
        overrides["modelFrame"] = ModelFrame.forSurvey(bandTuple)
        if conditions is None:
            conditions = LSST_CONDITIONS.model_dump()
    config = ModelConfig.fromProfile("tiny", **overrides)
    if seed is not None:
        torch.manual_seed(int(seed))
    encoder, decoder, flow, deblenderEncoder = Encoder(config), Decoder(config), makeFlow(config), Encoder(config)
    if directory is not None:
        card = exportModels(directory, config, encoder, decoder, flow, deblenderEncoder, conditions=conditions)
        return loadModels(card.parent, device=device)
    with tempfile.TemporaryDirectory() as tmp:
        card = exportModels(tmp, config, encoder, decoder, flow, deblenderEncoder, conditions=conditions)
        return loadModels(card.parent, device=device)
