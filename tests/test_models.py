"""Networks, losses, TorchScript export and checked loading."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from lsst.meas.extensions.madness.models import (
    Decoder,
    DecoderConfig,
    Encoder,
    FlowLogProb,
    ModelCardError,
    ModelConfig,
    betaVaeLoss,
    exportModels,
    klToStandardNormal,
    loadModels,
    makeFlow,
    reconstructionLoss,
    sampleLatent,
    ssim,
)

TINY = ModelConfig.fromProfile("tiny")


def count(module):
    return sum(p.numel() for p in module.parameters())


def test_paper_profile_sizes_match_the_paper():
    paper = ModelConfig.fromProfile("paper")
    # App. B.1: "around 6.7M and 3.5M"; App. B.2: 15 936 flow parameters.
    assert 6.5e6 < count(Encoder(paper)) < 6.8e6
    assert 3.0e6 < count(Decoder(paper)) < 3.6e6
    assert count(makeFlow(paper)) == 15936
    light = ModelConfig.fromProfile("light")
    assert count(Decoder(light)) < 0.5 * count(Decoder(paper))
    # Two light encoders (VAE and VAE-deblender) and the decoder fit the 30 MB weight budget in fp32.
    assert 4 * (2 * count(Encoder(light)) + count(Decoder(light))) < 30e6
    with pytest.raises(ValueError, match="unknown model profile"):
        ModelConfig.fromProfile("huge")
    with pytest.raises(ValueError, match="smaller than stampSize"):
        ModelConfig(decoder=DecoderConfig(channels=(8, 8)))


def test_encoder_gives_a_valid_cholesky_factor_and_kl_matches_torch():
    torch.manual_seed(0)
    encoder = Encoder(TINY)
    mean, scaleTril = encoder(torch.rand(5, 6, 45, 45))
    assert torch.all(torch.triu(scaleTril, diagonal=1) == 0)
    assert torch.all(torch.diagonal(scaleTril, dim1=-2, dim2=-1) > 0)
    posterior = torch.distributions.MultivariateNormal(mean, scale_tril=scaleTril)
    prior = torch.distributions.MultivariateNormal(torch.zeros(16), torch.eye(16))
    torch.testing.assert_close(klToStandardNormal(mean, scaleTril), torch.distributions.kl_divergence(posterior, prior))
    samples = torch.stack([sampleLatent(mean[:1], scaleTril[:1]) for _ in range(4000)])[:, 0]
    torch.testing.assert_close(torch.cov(samples.T), (scaleTril[0] @ scaleTril[0].T).detach(), atol=0.05, rtol=0.1)


def test_decoder_is_non_negative_and_45_pixels():
    decoder = Decoder(TINY)
    image = decoder(torch.randn(3, 16) * 3)
    assert image.shape == (3, 6, 45, 45) and torch.all(image >= 0)


def test_losses():
    target = torch.rand(2, 6, 45, 45)
    sky = torch.full((6,), 0.01)
    assert torch.all(reconstructionLoss(target, target, sky) == 0)
    worse = reconstructionLoss(target, target + 0.1, sky)
    assert torch.all(worse > 0)
    assert torch.allclose(ssim(target, target), torch.ones(2))
    assert torch.all(ssim(target, torch.rand(2, 6, 45, 45)) < 0.5)


def test_a_tiny_vae_learns():
    """A few Adam steps on four fixed stamps lower the β-VAE loss (with SSIM warm-up)."""
    torch.manual_seed(1)
    yy, xx = torch.meshgrid(torch.arange(45.0), torch.arange(45.0), indexing="ij")
    blob = torch.exp(-((xx - 22) ** 2 + (yy - 22) ** 2) / 20.0)
    target = torch.stack([blob * a for a in (0.5, 1.0, 1.5, 2.0)])[:, None].repeat(1, 6, 1, 1)
    noisy = target + 0.01 * torch.randn_like(target)
    encoder, decoder = Encoder(TINY), Decoder(TINY)
    optimiser = torch.optim.Adam([*encoder.parameters(), *decoder.parameters()], lr=3e-3)
    sky = torch.full((6,), 0.01)
    losses = []
    for step in range(60):
        mean, scaleTril = encoder(noisy)
        prediction = decoder(sampleLatent(mean, scaleTril))
        loss = betaVaeLoss(target, prediction, mean, scaleTril, sky, ssimWeight=max(0.0, 1 - step / 30))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def export(tmp_path):
    torch.manual_seed(2)
    modules = Encoder(TINY), Decoder(TINY), makeFlow(TINY), Encoder(TINY)
    card = exportModels(tmp_path, TINY, *modules, training={"stamps": 0}, validation={"note": "untrained"})
    return card, modules


def test_export_reloads_with_the_same_outputs(tmp_path, device, tolerance):
    card, modules = export(tmp_path)
    encoder, decoder, flow, deblender = (module.to(device) for module in modules)
    models = loadModels(tmp_path, bands=TINY.bands, stampSize=45, device=device)
    x = torch.rand(3, 6, 45, 45, device=device)
    z = torch.randn(7, 16, device=device)
    with torch.no_grad():
        for eager, scripted in ((encoder, models.encoder), (deblender, models.deblenderEncoder)):
            for a, b in zip(eager(x), scripted(x)):
                torch.testing.assert_close(a, b, **tolerance)
        torch.testing.assert_close(decoder(z), models.decode(z), **tolerance)
        torch.testing.assert_close(FlowLogProb(flow)(z), models.logPrior(z), **tolerance)
    content = json.loads(card.read_text())
    assert content["bands"] == list(TINY.bands) and content["torchVersion"] == torch.__version__
    assert set(content["files"]) == {"encoder", "decoder", "deblenderEncoder", "flowLogProb"}
    assert all(len(entry["sha256"]) == 64 for entry in content["files"].values())


def test_loading_needs_neither_zuko_nor_training_code(tmp_path):
    export(tmp_path)
    code = (
        "import sys; sys.modules['zuko'] = None\n"
        "import torch\n"
        "from lsst.meas.extensions.madness.models.export import loadModels\n"
        f"m = loadModels({str(tmp_path)!r})\n"
        "print(float(m.logPrior(torch.zeros(1, 16))[0]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_mismatched_or_corrupted_artefacts_are_refused(tmp_path):
    card, _ = export(tmp_path)
    with pytest.raises(ModelCardError,
                       match=r"take bands \['u', 'g', 'r', 'i', 'z', 'y'\], but the data have \['g', 'r'\]"):
        loadModels(tmp_path, bands=["g", "r"])
    with pytest.raises(ModelCardError, match="45-pixel stamps, not 41"):
        loadModels(tmp_path, stampSize=41)
    decoder = tmp_path / "decoder.pt"
    data = bytearray(decoder.read_bytes())
    data[len(data) // 2] ^= 0xFF
    decoder.write_bytes(bytes(data))
    with pytest.raises(ModelCardError, match=r"decoder.pt: sha256 .* differs from the model card"):
        loadModels(tmp_path)
    decoder.unlink()
    with pytest.raises(FileNotFoundError, match=r"decoder\.pt: missing model file"):
        loadModels(tmp_path)
    card.write_text("{not json")
    with pytest.raises(ModelCardError, match="not valid JSON"):
        loadModels(tmp_path)
    card.unlink()
    with pytest.raises(FileNotFoundError, match="no model card"):
        loadModels(tmp_path)
