r"""SCARLET fit of one blend with ``scarlet2``: the fallback deblender and the benchmark baseline.

:func:`fitScarletBlend` models a multi-band blend as a sum of K sources, each the outer product of
a spectrum :math:`a_k` (one amplitude per band) and a non-parametric morphology :math:`s_k`
(a pixel image in a box around the source centre), defined in a model frame whose PSF is a
narrow Gaussian :math:`\phi_0` and brought to each band :math:`b` of the observation by the
difference kernel :math:`\Delta_b` with :math:`\phi_b = \Delta_b * \phi_0`:

.. math::

    M_b = \sum_k a_{k,b}\, \Delta_b * s_k, \qquad
    \log L = -\tfrac12 \sum_{b,\rm pixels} w_b\,(y_b - M_b)^2 .

Spectra are constrained positive and morphologies to :math:`(0, 1)`; ``scarlet2`` maximises
:math:`\log L` with Adam and step sizes relative to the norm of each parameter, and stops when no
parameter changes by more than ``relativeError`` (relative norm) in one step.

Initialisation of each source, in order:

1. ``gaussian_moments``: spectrum and elliptical Gaussian morphology from the PSF-deconvolved
   second moments in a box grown until its edge reaches the noise
   (:func:`scarlet2.init.from_gaussian_moments`); used when it succeeds and gives a positive spectrum.
2. ``compact``: the model-frame PSF as morphology (padded to ``compactBoxSize``) with the
   PSF-corrected spectrum of the centre pixel; used when the moments are undefined (faint or
   crowded sources: about half of them).

In both, spectrum values below ``minSpectrumFraction`` of the brightest band are raised to it,
because a single non-positive amplitude has no finite value under the positivity transform and
turns the whole scene into NaN. Morphology boxes are capped at ``maxBoxSize``.

Cost: scarlet2 0.5.1 compiles every fit anew, since its jitted step is keyed on the identities of
the parameter and optimiser objects (not only on shapes), so padding blends to shape buckets
would not help and is not done. On 2 CPU cores a fit takes ~2 s for 3 sources and ~10 s for 25,
mostly compilation; the first call of a process adds ~10 s. Compiled code piles up (~13 MB per
fit) until ``jax.clear_caches()``, called every ``clearCachesEvery`` fits. JAX's persistent
compilation cache (``compilationCacheDir``) is keyed on the lowered program instead, so a fit whose
shapes were seen before skips XLA's compilation: about twice as fast, with the same results.

References
----------
Melchior et al. 2018, Astronomy and Computing 24, 129, "SCARLET: source separation in
multi-band images by constrained matrix factorization".
Sampson et al. 2024, scarlet2, the JAX re-implementation of scarlet
(https://github.com/pmelchior/scarlet2); used here at version 0.5.1.

Examples
--------
A fit compiles with JAX for seconds, so this example is shown rather than run (the tests run
such fits); ``data`` and ``weight`` are (3, 60, 60) arrays and ``psfs`` is (3, 41, 41):

.. code-block:: python

    fit = fitScarletBlend(data, weight, psfs, positions=np.array([[20.0, 22.0], [40.0, 38.0]]), bands="gri")
    fit.models.shape, fit.initialisation   # ((2, 3, 60, 60), ['gaussian_moments', 'gaussian_moments'])
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ScarletFitConfig", "ScarletFit", "fitScarletBlend"]


class ScarletFitConfig(BaseModel):
    """Optimiser, initialisation and cache settings of the scarlet2 fit of one blend."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    maxIter: int = Field(200, ge=1, description="Most iterations of scarlet2's Scene.fit.")
    relativeError: float = Field(
        1e-3, gt=0, description="scarlet2's e_rel: stop when no parameter changes by more than this "
        "fraction of its norm in one step.")
    spectrumStep: float = Field(
        0.05, gt=0, description="Step size of the spectra, relative to the norm of their (log) parameters.")
    morphologyStep: float = Field(
        1e-3, gt=0, description="Step size of the morphologies, relative to the norm of their (logit) parameters.")
    modelPsfSigma: float = Field(
        0.7, gt=0, description="Width (pixels) of the Gaussian model-frame PSF; must be narrower than every "
        "observed PSF.")
    maxBoxSize: int = Field(
        61, ge=5, description="Largest side (pixels) of a morphology box from the moments initialisation.")
    boxPadding: int = Field(
        0, ge=0, description="Pixels added on each side of a moments morphology box (up to maxBoxSize); "
        "the box stops where the edge reaches the noise, which truncates extended wings.")
    compactBoxSize: int = Field(
        15, ge=3, description="Side (pixels) of the morphology box of a compact initialisation.")
    minSpectrumFraction: float = Field(
        1e-3, gt=0, lt=1, description="Initial spectrum values are raised to at least this fraction of the "
        "brightest band.")
    clearCachesEvery: int = Field(
        50, ge=0, description="Call jax.clear_caches() after this many fits (0: never). Every fit compiles "
        "anew (~13 MB kept per fit); a clear costs ~10 s of recompiling the initialisation.")
    compilationCacheDir: str | None = Field(
        None, description="Directory of JAX's persistent compilation cache (None: none). It is keyed on "
        "the compiled program, not on object identities, so fits of the same shapes skip XLA's "
        "compilation (about twice as fast, identical results). Set at the first fit of a process.")


@dataclass
class ScarletFit:
    """Result of :func:`fitScarletBlend`."""

    models: np.ndarray
    """Each source's model convolved to the observed PSFs, (K, bands, H, W), in the units of the data."""
    iterations: int
    """Iterations run by scarlet2."""
    converged: bool
    """Whether ``relativeError`` stopped the fit before ``maxIter``."""
    initialisation: list[str]
    """Per source: ``"gaussian_moments"`` or ``"compact"``."""
    logLikelihood: float
    """:math:`-\\frac12 \\sum w\\,(y - \\sum_k M_k)^2` over all pixels."""


_state = {"fitsSinceClear": 0, "ready": False}


def _scarlet2(compilationCacheDir: str | None = None):
    """Import JAX (on CPU unless told otherwise) and scarlet2 on first use, with validation off.

    The persistent compilation cache can only be chosen before JAX compiles anything, so only the
    first call's ``compilationCacheDir`` counts.
    """
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    import jax
    import scarlet2

    if not _state["ready"]:
        # The checks are slow, print to stdout, and the caller validates the result itself.
        scarlet2.set_validation(False)
        if compilationCacheDir is not None:
            os.makedirs(compilationCacheDir, exist_ok=True)
            jax.config.update("jax_compilation_cache_dir", str(compilationCacheDir))
            # scarlet2's many small programs are each below JAX's default thresholds for caching.
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
            jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)
        _state["ready"] = True
    return jax, scarlet2


def _checkInputs(data, weight, psfs, positions, bands):
    data = np.asarray(data, dtype=np.float64)
    weight = np.asarray(weight, dtype=np.float64)
    psfs = np.asarray(psfs, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64)
    if data.ndim != 3:
        raise ValueError(f"data must be (bands, H, W), got shape {data.shape}")
    if weight.shape != data.shape:
        raise ValueError(f"weight shape {weight.shape} differs from data shape {data.shape}")
    if len(bands) != data.shape[0]:
        raise ValueError(f"{len(bands)} bands given for data with {data.shape[0]} bands (shape {data.shape})")
    if psfs.ndim != 3 or psfs.shape[0] != data.shape[0] or psfs.shape[1] != psfs.shape[2]:
        raise ValueError(f"psfs must be (bands={data.shape[0]}, P, P), got shape {psfs.shape}")
    if psfs.shape[1] % 2 == 0:
        raise ValueError(f"psfs must have an odd size P (centred on a pixel), got shape {psfs.shape}")
    if positions.ndim != 2 or positions.shape[1] != 2:
        raise ValueError(f"positions must be (K, 2) as (y, x), got shape {positions.shape}")
    if positions.shape[0] == 0:
        raise ValueError("positions is empty: a blend needs at least one source (K >= 1)")
    height, width = data.shape[1:]
    inside = (np.isfinite(positions).all(axis=1) & (positions[:, 0] >= -0.5) & (positions[:, 0] < height - 0.5)
              & (positions[:, 1] >= -0.5) & (positions[:, 1] < width - 0.5))
    if not inside.all():
        raise ValueError(f"positions {positions[~inside].tolist()} lie outside the {height}x{width} canvas")
    # A pixel is ignored only if its weight is zero; NaN data there would still poison 0 * NaN.
    weight = np.where(np.isfinite(weight) & (weight > 0), weight, 0.0)
    data = np.where(weight > 0, np.nan_to_num(data), 0.0)
    return data, weight, psfs, positions


def _positiveSpectrum(spectrum: np.ndarray, fraction: float) -> np.ndarray | None:
    """Spectrum with values raised to ``fraction`` of its maximum; None if it has no positive value."""
    spectrum = np.asarray(spectrum, dtype=np.float64)
    if not np.isfinite(spectrum).all() or spectrum.max() <= 0:
        return None
    return np.maximum(spectrum, fraction * spectrum.max())


def _cropOrPad(morph: np.ndarray, size: int, fill: float) -> np.ndarray:
    """Centre crop or pad of a square morphology to an odd ``size``."""
    size += 1 - size % 2
    n = morph.shape[0]
    if n > size:
        start = (n - size) // 2
        return morph[start:start + size, start:start + size]
    if n < size:
        before = (size - n) // 2
        return np.pad(morph, (before, size - n - before), constant_values=fill)
    return morph


def _initialiseSource(scarlet2, obs, centre, config: ScarletFitConfig):
    """Spectrum, morphology and name of the initialisation used for the source at ``centre``."""
    lo, hi = 1e-6, 1 - 1e-6
    try:
        spectrum, morph = scarlet2.init.from_gaussian_moments(obs, centre, min_value=lo, max_value=hi)
        spectrum = _positiveSpectrum(spectrum, config.minSpectrumFraction)
        morph = np.asarray(morph, dtype=np.float64)
        if spectrum is not None and np.isfinite(morph).all():
            size = min(config.maxBoxSize, morph.shape[0] + 2 * config.boxPadding)
            return spectrum, _cropOrPad(morph, size, lo), "gaussian_moments"
    except (ValueError, AssertionError, ZeroDivisionError, FloatingPointError):
        pass
    # Peak of the model PSF at 1, so that the corrected pixel spectrum is the flux of a point source.
    morph = np.asarray(scarlet2.init.compact_morphology(min_value=lo, max_value=hi), dtype=np.float64)
    morph = np.clip(morph / morph.max(), lo, hi)
    spectrum = np.asarray(scarlet2.init.pixel_spectrum(obs, centre, correct_psf=True), dtype=np.float64)
    fallback = np.maximum(np.abs(spectrum).max(), 1e-6) if np.isfinite(spectrum).all() else 1.0
    spectrum = _positiveSpectrum(spectrum, config.minSpectrumFraction)
    if spectrum is None:
        spectrum = np.full(obs.data.shape[0], config.minSpectrumFraction * fallback)
    return spectrum, _cropOrPad(morph, config.compactBoxSize, lo), "compact"


def fitScarletBlend(data: np.ndarray, weight: np.ndarray, psfs: np.ndarray, positions: np.ndarray,
                    bands: Sequence[str], config: ScarletFitConfig = ScarletFitConfig()) -> ScarletFit:
    """Fit the K sources at ``positions`` (y, x) to one blend with scarlet2.

    Parameters
    ----------
    data, weight : `numpy.ndarray`
        (bands, H, W) image (electrons) and inverse variance; pixels with zero (or non-finite)
        weight are ignored.
    psfs : `numpy.ndarray`
        (bands, P, P) PSF images, P odd, normalised to sum 1.
    positions : `numpy.ndarray`
        (K, 2) source centres (y, x) in canvas pixels, pixel centres at integers.
    bands : `Sequence` [`str`]
        Band names, one per image plane.
    config : `ScarletFitConfig`
        Optimiser and initialisation settings.

    Returns
    -------
    fit : `ScarletFit`
        Models may be non-finite if the optimisation diverged; the caller checks.

    Raises
    ------
    ValueError
        For inconsistent shapes, no sources, an even PSF size or positions off the canvas.

    Examples
    --------
    scarlet2 compiles every fit with JAX, for tens of seconds on a CPU even for a tiny blend, so this
    example is shown rather than run (``tests/test_scarlet_core.py`` runs such fits). One Gaussian
    source in two bands, 21×21 pixels, with a 5×5 PSF:

    .. code-block:: python

        y, x = np.mgrid[:21, :21]
        psf = np.exp(-((x[:5, :5] - 2) ** 2 + (y[:5, :5] - 2) ** 2) / 2.0)
        psf /= psf.sum()
        image = 100 * np.exp(-((x - 10) ** 2 + (y - 10) ** 2) / 8.0)
        fit = fitScarletBlend(np.stack([image, 2 * image]), np.ones((2, 21, 21)), np.stack([psf, psf]),
                              np.array([[10.0, 10.0]]), ["g", "r"], ScarletFitConfig(maxIter=20))
        fit.models.shape, fit.initialisation, fit.iterations   # ((1, 2, 21, 21), ['gaussian_moments'], 20)
    """
    data, weight, psfs, positions = _checkInputs(data, weight, psfs, positions, bands)
    jax, scarlet2 = _scarlet2(config.compilationCacheDir)
    import jax.numpy as jnp
    from numpyro.distributions import constraints

    height, width = data.shape[1:]
    # Boxes are placed on integer centres; round (scarlet2 truncates) and keep them on the canvas.
    centres = np.clip(np.floor(positions + 0.5), 0, [height - 1, width - 1])
    channels = list(bands)
    obs = scarlet2.Observation(jnp.asarray(data), weights=jnp.asarray(weight),
                               psf=scarlet2.ArrayPSF(jnp.asarray(psfs)), channels=channels)
    frame = scarlet2.Frame.from_observations(obs, model_psf=scarlet2.GaussianPSF(config.modelPsfSigma))
    obs.match(frame)

    initialisation = []
    # scarlet2's init prints warnings about non-positive pixels to stdout, and its unit conversion
    # probes deprecated JAX array attributes; both are expected here.
    with (scarlet2.Scene(frame) as scene, contextlib.redirect_stdout(io.StringIO()),
          warnings.catch_warnings()):
        warnings.simplefilter("ignore", DeprecationWarning)
        for centre in centres:
            centre = jnp.asarray(centre)
            spectrum, morph, kind = _initialiseSource(scarlet2, obs, centre, config)
            scarlet2.Source(centre, jnp.asarray(spectrum), jnp.asarray(morph))
            initialisation.append(kind)

    spectrumStep = partial(scarlet2.relative_step, factor=config.spectrumStep)
    morphologyStep = partial(scarlet2.relative_step, factor=config.morphologyStep)
    with scarlet2.Parameters(scene), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for k, source in enumerate(scene.sources):
            scarlet2.Parameter(source.spectrum, name=f"spectrum:{k}", constraint=constraints.positive,
                               stepsize=spectrumStep)
            scarlet2.Parameter(source.morphology, name=f"morph:{k}", constraint=constraints.unit_interval,
                               stepsize=morphologyStep)

    # Scene.fit returns only the scene: count its steps and keep the last changes through the callback.
    progress: dict[str, Any] = {"steps": 0, "change": np.inf}

    def callback(scene_, change, loss):
        progress["steps"] += 1
        progress["change"] = change

    fitted = scene.fit(obs, max_iter=config.maxIter, e_rel=config.relativeError, progress_bar=False,
                       callback=callback)
    converged = max(float(c) for c in jax.tree_util.tree_leaves(progress["change"])) < config.relativeError
    models = np.stack([np.asarray(obs.render(fitted.evaluate_source(source)), dtype=np.float64)
                       for source in fitted.sources])
    # The FFT convolution leaves round-off ringing of either sign around zero; NaN stays NaN.
    models = np.maximum(models, 0.0)
    with np.errstate(invalid="ignore", over="ignore"):
        logLikelihood = float(-0.5 * np.sum(weight * (data - models.sum(axis=0)) ** 2))

    _state["fitsSinceClear"] += 1
    if config.clearCachesEvery and _state["fitsSinceClear"] >= config.clearCachesEvery:
        jax.clear_caches()
        _state["fitsSinceClear"] = 0
    return ScarletFit(models=models, iterations=progress["steps"], converged=converged,
                      initialisation=initialisation, logLikelihood=logLikelihood)
