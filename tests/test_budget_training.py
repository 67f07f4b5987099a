"""Budget training in the model frame: the training stamps, the trainer, and the GPU command rehearsed on CPU."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch

from lsst.meas.extensions.madness.models import Decoder, Encoder, ModelConfig, loadModels, makeFlow
from lsst.meas.extensions.madness.models.budgetTraining import adaptLegacyUnits, loadInitialWeights, reviveDeadBands
from lsst.meas.extensions.madness.models.config import ModelFrame
from lsst.meas.extensions.madness.models.export import exportModels, weakBands
from lsst.meas.extensions.madness.models.latentScale import latentStatistics, standardiseLatents
from lsst.meas.extensions.madness.sim import generatePopulation
from lsst.meas.extensions.madness.sim.survey import LSST_CONDITIONS
from lsst.meas.extensions.madness.sim.trainingStamps import (
    ObservedPsfRange,
    TrainingStampSimulator,
    loadPopulationArrays,
    savePopulationArrays,
    skyNoiseNJy,
)

BANDS = "ugrizy"


@pytest.fixture(scope="module")
def population(tmp_path_factory):
    path = tmp_path_factory.mktemp("population") / "population.npz"
    savePopulationArrays(path, generatePopulation(600, seed=7), BANDS)
    return path


@pytest.fixture(scope="module")
def simulator(population):
    return TrainingStampSimulator(loadPopulationArrays(population, "train"), BANDS, stampSize=33)


def test_population_file_keeps_the_splits_apart(population):
    train, validation = (loadPopulationArrays(population, s) for s in ("train", "validation"))
    assert len(train["magnitudes"]) > len(validation["magnitudes"]) > 0
    assert not set(train["galtileid"]) & set(validation["galtileid"])
    with pytest.raises(KeyError, match="test galaxies lack"):
        loadPopulationArrays(population, "test")


def test_model_frame_and_observed_stamps_share_the_galaxy(simulator):
    batch = simulator.isolated(24, torch.Generator().manual_seed(1))
    model, observed = batch["model"], batch["observedNoiseless"]
    small = model.sum(dim=(2, 3)) > 0
    # Same galaxy, same flux: only the PSF differs (light beyond the stamp aside).
    ratio = (model.sum(dim=(2, 3)) / observed.sum(dim=(2, 3)))[small]
    assert torch.allclose(ratio, torch.ones_like(ratio), atol=0.05)
    # The model frame is sharper than any observation.
    assert bool((model.amax(dim=(2, 3)) >= observed.amax(dim=(2, 3)) * 0.999).all())


def test_noise_is_unit_sky_noise_in_network_units(simulator):
    batch = simulator.isolated(16, torch.Generator().manual_seed(2))
    corner = (batch["observed"] - batch["observedNoiseless"])[:, :, :5, :5]
    assert torch.allclose(corner.std(dim=(0, 2, 3)), torch.ones(6), atol=0.15)
    assert torch.allclose(batch["variance"].amin(dim=(0, 2, 3)), torch.ones(6), atol=0.02)


def test_band_scales_are_the_sky_noise_in_nJy():
    scales = skyNoiseNJy(LSST_CONDITIONS, BANDS)
    assert len(scales) == 6 and min(scales) > 0
    assert scales[1] < scales[-1]  # y's bright sky is the noisiest


def test_blends_have_neighbours_and_an_isolated_reference(simulator):
    batch = simulator.blended(32, torch.Generator().manual_seed(3), maxNeighbours=2)
    assert set(batch["neighbours"].tolist()) <= {0, 1, 2} and batch["neighbours"].max() > 0
    alone = batch["neighbours"] == 0
    extra = (batch["observed"] - batch["isolated"]).sum(dim=(1, 2, 3))
    assert float(extra[~alone].mean()) > float(extra[alone].abs().mean())


def test_a_model_psf_wider_than_the_observations_is_refused(population):
    with pytest.raises(ValueError, match="narrower"):
        TrainingStampSimulator(loadPopulationArrays(population, "train"), BANDS,
                               ModelFrame.forSurvey(BANDS, psfFwhm=0.5),
                               psfRange=ObservedPsfRange(fwhm=(0.45, 1.0)))


def _tiny(frame: bool = True) -> ModelConfig:
    config = ModelConfig.fromProfile("tiny")
    if frame:
        config = ModelConfig.model_validate({**config.model_dump(),
                                             "modelFrame": ModelFrame.forSurvey(BANDS).model_dump(),
            "decoder": {**config.decoder.model_dump(), "outputActivation": "softplus"}})
    return config


def test_init_from_an_exported_directory_copies_the_weights(tmp_path):
    config = _tiny()
    torch.manual_seed(0)
    encoder, decoder, flow, deblender = Encoder(config), Decoder(config), makeFlow(config), Encoder(config)
    exportModels(tmp_path, config, encoder, decoder, flow, deblender)
    torch.manual_seed(1)
    fresh = {"encoder": Encoder(config), "decoder": Decoder(config), "flow": makeFlow(config),
             "deblenderEncoder": Encoder(config)}
    assert loadInitialWeights(tmp_path, fresh) == ["encoder", "decoder", "flow", "deblenderEncoder"]
    z = torch.randn(3, config.latentDim)
    assert torch.allclose(fresh["decoder"](z), decoder(z))
    assert torch.allclose(fresh["flow"]().log_prob(z), flow().log_prob(z))
    other = ModelConfig.fromProfile("light")
    with pytest.raises(ValueError, match="do not fit"):
        loadInitialWeights(tmp_path, {"encoder": Encoder(other)})


def test_legacy_weights_are_adapted_to_network_units():
    """Weights trained on electrons / 1e4 compute the same function of network units after adaptation."""
    config = _tiny(frame=False)
    torch.manual_seed(4)
    encoder, deblender, decoder = Encoder(config), Encoder(config), Decoder(config)
    perUnit = torch.tensor([40.0, 35.0, 356.0, 430.0, 500.0, 540.0])
    x = torch.rand(3, 6, 45, 45) * 50  # network units
    z = torch.randn(3, config.latentDim)
    legacyLatent = encoder(x * perUnit.view(1, -1, 1, 1) / 1e4)[0]
    legacyImage = decoder(z) * 1e4 / perUnit.view(1, -1, 1, 1)
    adaptLegacyUnits(encoder, deblender, decoder, 1e4, perUnit)
    torch.testing.assert_close(encoder(x)[0], legacyLatent, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(decoder(z), legacyImage, rtol=1e-4, atol=1e-4)


def test_standardised_latents_decode_the_same_and_reweight_the_prior():
    config = _tiny()
    torch.manual_seed(5)
    encoder, deblender, decoder, flow = Encoder(config), Encoder(config), Decoder(config), makeFlow(config)
    x = torch.rand(64, 6, 45, 45) * 20
    images = decoder(encoder(x)[0])
    mean, std = latentStatistics(encoder, x)
    z = torch.randn(4, config.latentDim)
    logPrior = flow().log_prob(mean + std * z)
    prior = standardiseLatents(encoder, deblender, decoder, flow, mean, std)
    torch.testing.assert_close(decoder(encoder(x)[0]), images, rtol=1e-4, atol=1e-4)
    standardised = encoder(x)[0]
    torch.testing.assert_close(standardised.mean(0), torch.zeros(config.latentDim), atol=1e-3, rtol=0)
    torch.testing.assert_close(standardised.std(0), torch.ones(config.latentDim), atol=1e-3, rtol=0)
    torch.testing.assert_close(prior(z), logPrior + torch.log(std).sum())


def test_softplus_output_keeps_a_gradient_where_relu_dies():
    for activation, alive in (("relu", False), ("softplus", True)):
        config = ModelConfig.model_validate({**_tiny(False).model_dump(), "decoder": {
            **_tiny(False).decoder.model_dump(), "outputActivation": activation}})
        decoder = Decoder(config)
        last = decoder.upsample[-2]
        with torch.no_grad():
            last.bias.fill_(-50.0)  # every output pixel far below zero: a dead channel for a ReLU
        decoder(torch.randn(4, config.latentDim)).sum().backward()
        assert (last.bias.grad.abs().sum() > 0) == alive


def test_a_dead_output_band_restarts_from_its_nearest_live_band():
    """The shipped weights' u channel draws nothing; revived, it draws the g galaxy at u's brightness."""
    config = ModelConfig.model_validate({**_tiny(False).model_dump(), "decoder": {
        **_tiny(False).decoder.model_dump(), "outputActivation": "relu"}})
    torch.manual_seed(8)
    encoder, decoder = Encoder(config), Decoder(config)
    last = decoder.upsample[-2]
    with torch.no_grad():
        last.bias[1:] += 1.0  # every band but u draws light
        last.bias[0] = -50.0  # u: dead
    batch = {"observed": torch.rand(16, 6, 45, 45) * 10, "model": torch.rand(16, 6, 45, 45) * 3}
    batch["model"][:, 0] *= 0.2  # u is fainter than g in these units
    assert reviveDeadBands(encoder, decoder, batch, BANDS) == ["u"]
    with torch.no_grad():
        flux = decoder(encoder(batch["observed"])[0]).sum(dim=(0, 2, 3))
    target = batch["model"].sum(dim=(0, 2, 3))
    assert float(flux[0]) > 0
    torch.testing.assert_close(flux[0] / target[0], flux[1] / target[1], rtol=1e-4, atol=0)
    assert reviveDeadBands(encoder, decoder, batch, BANDS) == []  # nothing left to revive
    with torch.no_grad():
        last.bias.fill_(-50.0)
    with pytest.raises(ValueError, match="every band"):
        reviveDeadBands(encoder, decoder, batch, BANDS)


def test_weak_bands_from_the_card_warn_on_load(tmp_path):
    config = _tiny()
    perBand = {b: {"meanCosine": 0.95} for b in BANDS} | {"u": {"meanCosine": 0.4}}
    exportModels(tmp_path, config, Encoder(config), Decoder(config), makeFlow(config), Encoder(config),
                 validation={"modelFrame": {"perBand": perBand, "deadBands": ["y"]}})
    card = json.loads((tmp_path / "model_card.json").read_text())
    assert card["modelFrame"]["psfFwhm"] == 0.35 and card["modelFrame"]["fluxUnit"] == "nJy"
    assert weakBands(card) == ["u", "y"]
    with pytest.warns(UserWarning, match="bands u, y poorly"):
        loadModels(tmp_path)


def test_gpu_command_rehearsed_on_cpu_without_galsim_or_astropy(tmp_path, population):
    """The GPU slot's command, at tiny scale on CPU, in a process where GalSim, astropy, yaml and
    matplotlib cannot be imported (a bare GPU machine); what it exports loads and deblends-ready."""
    script = textwrap.dedent("""
        import sys
        for name in ("astropy", "galsim", "matplotlib", "yaml", "scarlet2", "jax"):
            sys.modules[name] = None
        from lsst.meas.extensions.madness.models.trainCli import main
        sys.exit(main(sys.argv[1:]))
    """)
    out = tmp_path / "run"
    command = [sys.executable, "-c", script, "all", "--minutes", "0.08", "--profile", "tiny", "--device", "cpu",
               "--population", str(population), "--out", str(out), "--batch-size", "8", "--validation-stamps", "16",
               "--metric-stamps", "32", "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "held-out cosine" in done.stdout
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # an untrained tiny model is weak in every band
        models = loadModels(out / "models")
    card = models.card
    assert card["modelFrame"]["pixelScale"] == 0.2
    training = card["training"]
    assert training["kind"] == "budget" and training["device"] == "cpu"
    assert all(training["stages"][s]["steps"] >= 1 and training["stages"][s]["stampsSeen"] >= 8
               for s in ("vae", "flow", "deblender"))
    metrics = card["validation"]["modelFrame"]
    assert set(metrics["perBand"]) == set(BANDS) and metrics["stamps"] == 32
    assert len(training["latentStandardisation"]["std"]) == card["latentDim"]
    stamps = models.decode(torch.zeros(2, card["latentDim"]))
    assert tuple(stamps.shape) == (2, 6, 45, 45) and bool((stamps > 0).all())  # softplus: positive everywhere
    assert np.isfinite(json.loads((out / "summary.json").read_text())["training"]["trainedSeconds"])
