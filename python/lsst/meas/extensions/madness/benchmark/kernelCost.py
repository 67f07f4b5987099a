"""What the difference-kernel convolution adds to a MAP step, against the decoder's own cost.

A model-frame decoder's stamps meet the data only after each band is convolved with the
exposure's difference kernel (:mod:`~lsst.meas.extensions.madness.deblend.observation`). This
times one MAP step (objective forward and backward, as :func:`~..deblend.mapCore.fitLatents`
runs it) of :class:`~..deblend.mapCore.MapObjective` (:func:`~..deblend.fit.mapObjective`), with and without the
kernels (on LSST's pixels, and on HSC-like 0.168″ pixels, where the observation model also
samples the galaxies on the exposure's pixels), for the shipped networks' sizes on blends of a
fixed shape in the sky, and writes the ratios.
Weights do not change the cost, so the networks are the shipped architecture with a model
frame and random weights.

Examples
--------
.. code-block:: python

    rows = measureKernelCost(device="cpu", repeats=5)
    rows[0]["overhead"]
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["measureKernelCost", "writeKernelCost"]


def measureKernelCost(device: str | torch.device = "auto", galaxyCounts=(16, 64), peaksPerBlend: int = 4,
                      canvas: int = 90, psfSize: int = 41, repeats: int = 10, profile: str = "light",
                      otherPixelScale: float = 0.168) -> list[dict]:
    """Median seconds per MAP step with and without difference kernels, per batch size (galaxies);
    the kernels on the model frame's pixels and on pixels of ``otherPixelScale`` arcsec."""
    import numpy as np
    import torch

    from ..deblend.fit import blendPixelRatio, blendStampSize, mapObjective, observationKernels
    from ..models import Decoder, Encoder, ModelConfig, exportModels, loadModels, makeFlow
    from ..models.config import ModelFrame
    from ..sim.survey import LSST_CONDITIONS

    base = ModelConfig.fromProfile(profile)
    config = ModelConfig.model_validate({**base.model_dump(),
                                         "modelFrame": ModelFrame.forSurvey(base.bands).model_dump()})
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as directory:  # exported and loaded as the deblender loads them
        exportModels(directory, config, Encoder(config), Decoder(config), makeFlow(config), Encoder(config),
                     conditions=LSST_CONDITIONS.model_dump(mode="json"))
        models = loadModels(directory, device=device)
    device = models.device
    objective = mapObjective(models)
    y, x = np.mgrid[-(psfSize // 2):psfSize // 2 + 1, -(psfSize // 2):psfSize // 2 + 1]
    assert config.modelFrame is not None  # set above
    modelScale = config.modelFrame.pixelScale

    def moffat(pixelScale: float) -> np.ndarray:  # β = 3.5, FWHM 0.7″
        return (1 + (x**2 + y**2) / (3.74 * modelScale / pixelScale) ** 2) ** -3.5

    rows = []
    for galaxies in galaxyCounts:
        b, k, c = max(1, galaxies // peaksPerBlend), peaksPerBlend, len(config.bands)
        present = torch.ones(b, k, dtype=torch.bool, device=device)
        offsets = torch.rand(b, k, 2, device=device) - 0.5
        timings = {}
        for name, pixelScale in (("decoder", None), ("decoderAndKernels", modelScale),
                                 ("decoderAndKernelsOtherPixels", otherPixelScale)):
            ratio = blendPixelRatio(models, pixelScale)
            side = int(round(canvas / ratio))  # the same canvas on the sky
            data = torch.zeros(b, c, side, side, device=device)
            weight = torch.ones_like(data)
            corners = torch.randint(0, side - blendStampSize(models, pixelScale), (2, b, k), device=device)
            kernels = None if pixelScale is None else observationKernels(
                models, [[moffat(pixelScale)] * c], device, pixelScale=pixelScale)
            kernel = None if kernels is None else kernels.expand(b, -1, -1, -1).contiguous()
            latents = torch.randn(b, k, config.latentDim, device=device, requires_grad=True)
            times = []
            for repeat in range(repeats + 2):  # two warm-up steps (TorchScript profiles its first calls)
                if device.type == "cuda":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                loss, _, _ = objective(latents, data, weight, corners[0], corners[1], present, offsets, kernel, ratio)
                loss.sum().backward()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if repeat >= 2:
                    times.append(time.perf_counter() - start)
            timings[name] = float(np.median(times))
        rows.append({"galaxies": b * k, "secondsPerStep": timings["decoder"],
                     "secondsPerStepWithKernels": timings["decoderAndKernels"],
                     "overhead": timings["decoderAndKernels"] / timings["decoder"] - 1.0,
                     "otherPixelScale": otherPixelScale,
                     "secondsPerStepOtherPixels": timings["decoderAndKernelsOtherPixels"],
                     "overheadOtherPixels": timings["decoderAndKernelsOtherPixels"] / timings["decoder"] - 1.0})
    return rows


def writeKernelCost(path: str | Path, device: str = "auto", repeats: int = 10, profile: str = "light") -> Path:
    """Measure, and write a Markdown table to ``path`` and the numbers to ``path`` with ``.json``."""
    import torch

    from ..models.device import resolveDevice

    resolved = resolveDevice(device)
    rows = measureKernelCost(device=str(resolved), repeats=repeats, profile=profile)
    name = (torch.cuda.get_device_name(resolved) if resolved.type == "cuda"
            else f"CPU, {torch.get_num_threads()} threads")
    lines = [f"MAP step (objective forward + backward) of the {profile} networks, 4 galaxies per blend, 6 bands, "
             f"41-pixel Moffat PSF kernel images (β 3.5, FWHM 0.7″) cut as the deblender cuts them; {name}; "
             f"median of {repeats} steps. The last two columns: the same blends on the sky on "
             f"{rows[0]['otherPixelScale']}″ pixels (HSC's), the galaxies sampled on them by the observation "
             "model.", "",
             "| galaxies | decoder only (ms) | with difference kernels (ms) | added | on other pixels (ms) | added |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['galaxies']} | {1e3 * r['secondsPerStep']:.1f} | {1e3 * r['secondsPerStepWithKernels']:.1f} | "
              f"{100 * r['overhead']:+.0f} % | {1e3 * r['secondsPerStepOtherPixels']:.1f} | "
              f"{100 * r['overheadOtherPixels']:+.0f} % |" for r in rows]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps({"device": name, "profile": profile, "rows": rows},
                                                    indent=1) + "\n")
    return path
