"""One test field through every method: predictions per galaxy, then the paper's metrics per galaxy.

For a TestFields scene, :func:`evaluateField` makes the exposure and its parents (peaks at the
true centres, or detected), predicts each true galaxy's image on the field with each method, and
measures, per galaxy and method (:mod:`.metrics`):

- ``F`` on the galaxy's noiseless image plus the field's own noise (the noisy isolated galaxy in the
  same noise realisation), ``F^b`` on the field, ``F^d`` on the field minus all other predicted
  galaxies, in elliptical apertures of semi-axes :math:`\\sqrt{(2a_{\\rm hlr})^2 + d^2}` (Eq. 13)
  centred on the true centre; :math:`\\delta F/F`, contamination :math:`\\kappa` and blendedness
  :math:`\\beta` (Eq. 11-14) per band;
- cosine similarity and SSIM per band against the noiseless isolated galaxy on its stamp (45×45 LSST pixels);
- r-band ellipticity residuals (adaptive moments, Eq. 18) against the noiseless isolated galaxy;
- g−r colour residuals against the catalogue (:math:`\\delta C^T`) and against the photometry of
  the noisy isolated galaxy (:math:`\\delta C^B`).

Methods: ``none`` (no deblending: :math:`F^d = F^b`), ``vae`` (the VAE-deblender's single pass:
its latent of each peak's cutout, decoded), ``madness`` (MadnessDeblendTask), ``scarlet``
(ScarletDeblendTask), and ``fidelity``: the VAE's own encoder on each galaxy's *isolated* noisy
stamp, decoded. It needs the truth, so it is no deblender: it is the limit the VAE's fidelity sets
on MADNESS (a deblender that found every galaxy's best latent could do no better than this).
``template`` needs the truth too: every galaxy's noiseless image is known and only its amplitude
per band is fitted, jointly over the field, by weighted least squares on the noisy image. It is
the floor that noise sets on a deblender that knows every shape exactly: what is left of
:math:`\\delta F/F` is the neighbours' amplitude noise in the aperture.

A galaxy with no child (a missed detection) is predicted as zero by every method but ``none``;
detected peaks with no galaxy within :data:`~..sim.inputs.MATCH_RADIUS` pixels are counted as spurious.
A missed galaxy's record says whether it lies inside a parent's footprint (``inFootprint``: an
unrecognised blend, which a residual-peak search can find; outside, detection never saw it) and,
under each deblender, whether a residual peak it added was matched to it (``recovered``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from . import metrics, morphology

if TYPE_CHECKING:
    from ..deblend.baseTask import DeblendBaseTask

__all__ = ["METHODS", "MODEL_METHODS", "FieldMethods", "evaluateField", "methodBase", "templateFit", "variantSpec"]

METHODS: tuple[str, ...] = ("none", "vae", "madness", "scarlet", "fidelity", "template")


def _apertureShape(truth) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flux-weighted half-light semi-axes (arcsec) and the disk's position angle (radians)."""
    fraction = np.asarray(truth["bulge_fraction"], float)
    axes = []
    for component in ("bulge", "disk"):
        hlr = np.asarray(truth[f"hlr_{component}"], float)
        q = np.clip(np.asarray(truth[f"q_{component}"], float), 1e-3, 1)
        axes.append((hlr / np.sqrt(q), hlr * np.sqrt(q)))  # hlr = √(a b), q = b / a
    a = fraction * axes[0][0] + (1 - fraction) * axes[1][0]
    b = fraction * axes[0][1] + (1 - fraction) * axes[1][1]
    theta = np.where(fraction > 0.5, np.asarray(truth["pa_bulge"], float), np.asarray(truth["pa_disk"], float))
    return a, b, np.radians(theta)


def methodBase(method: str) -> tuple[str, str | None]:
    """``"madness:new"`` → ``("madness", "new")``: a method and the model variant it runs with (None: the
    run's default models)."""
    base, _, label = method.partition(":")
    return base, label or None


#: Methods that run the MADNESS networks, and so take a model variant.
MODEL_METHODS: tuple[str, ...] = ("vae", "madness", "fidelity")


class FieldMethods:
    """The deblenders of a benchmark run, set up once (models loaded, JAX warm after the first field).

    ``variants`` maps labels to further MADNESS model directories: a method ``"madness:LABEL"``
    (or ``vae:LABEL``, ``fidelity:LABEL``) runs with those models, beside the default ones, so
    two model sets are compared on the same fields in one run. A variant may also change the
    task's configuration (:func:`variantSpec`).
    """

    def __init__(self, methods: Sequence[str] = METHODS, device: str = "auto",
                 compilationCacheDir: str | None = None, modelDir: str | None = None,
                 variants: Mapping[str, str | os.PathLike] | None = None):
        from ..afw.table import SourceTable

        variants = {label: str(path) for label, path in (variants or {}).items()}  # the config takes str
        unknown = sorted(m for m in methods if methodBase(m)[0] not in METHODS
                         or (methodBase(m)[1] is not None and (methodBase(m)[0] not in MODEL_METHODS
                                                                or methodBase(m)[1] not in variants)))
        if unknown:
            raise ValueError(f"unknown methods {unknown}; choose from {list(METHODS)}, and "
                             f"{'/'.join(MODEL_METHODS)}:LABEL for a model variant LABEL given with its directory")
        self.methods = tuple(methods)
        self.tasks: dict[str, DeblendBaseTask] = {}
        #: Per method, the peaks its deblender added on the last field (residual peaks) and how many of
        #: them lie within MATCH_RADIUS of a galaxy detection missed.
        self.residualPeaks: dict[str, dict[str, int]] = {}
        #: Per method, the rows of the missed galaxies those peaks were matched to.
        self.recoveredGalaxies: dict[str, set[int]] = {}
        from ..deblend import MadnessDeblendConfig, MadnessDeblendTask

        for label, spec in [(None, modelDir), *variants.items()]:
            if any(methodBase(m) == (base, label) for m in methods for base in MODEL_METHODS):
                key = "madness" if label is None else f"madness:{label}"
                directory, overrides = variantSpec(None if spec is None else str(spec))
                madnessConfig = MadnessDeblendConfig(device=device, modelDir=directory or modelDir, **overrides)
                self.tasks[key] = MadnessDeblendTask(SourceTable.makeMinimalSchema(), config=madnessConfig)
        if "scarlet" in methods:
            from ..deblend import ScarletDeblendConfig, ScarletDeblendTask

            config = ScarletDeblendConfig(compilationCacheDir=compilationCacheDir)
            self.tasks["scarlet"] = ScarletDeblendTask(SourceTable.makeMinimalSchema(), config=config)

    def predict(self, method: str, mExposure, parents, nGalaxies: int, matches: dict[int, int],
                scene=None) -> np.ndarray:
        """(galaxies, bands, H, W): each true galaxy's predicted image on the field (zero if unmatched)."""
        height, width = mExposure.image.array.shape[1:]
        out = np.zeros((nGalaxies, len(mExposure.bands), height, width))
        base, label = methodBase(method)
        madness = self.tasks.get("madness" if label is None else f"madness:{label}")
        if base == "fidelity":
            return self._fidelity(madness, scene, out, mExposure)
        if base == "template":
            return templateFit(scene, out)
        if base == "vae":
            return self._singlePass(madness, mExposure, parents, out, matches)
        task = madness if base == "madness" else self.tasks[method]
        assert task is not None, f"no task for {method}"
        result = task.run(mExposure, parents)
        catalog = result.deblendedCatalog
        # Peaks the deblender added (residual peaks) are matched to the galaxies detection missed.
        detected = {int(q.getId()) for q in _allPeaks(parents)}
        added = {int(p.getId()): p for p in _allPeaks(catalog[:len(parents)]) if int(p.getId()) not in detected}
        extra, _ = _matchPeakRecords(list(added.values()), scene.positions if scene is not None else None,
                                     set(matches.values()))
        self.residualPeaks[method] = {"added": len(added), "recovered": len(extra),
                                      "spurious": len(added) - len(extra)}
        self.recoveredGalaxies[method] = set(extra.values())
        everything = {**matches, **extra}
        for parent in catalog[:len(parents)]:
            model = result.modelData.blends.get(parent.getId())
            if model is None:
                continue
            box = result.modelData.boxes[parent.getId()]
            for k, peak in enumerate(parent.getFootprint().getPeaks()):
                galaxy = everything.get(int(peak.getId()))
                if galaxy is None:
                    continue
                rows, cols = model.children.slices(k)
                _add(out[galaxy], model.children.images[k], box.getMinY() + rows.start, box.getMinX() + cols.start)
        return out

    @staticmethod
    def _decodeStamps(task, stamps: np.ndarray, encoder: str, offsets: np.ndarray, psfImages,
                      pixelScale: float | None) -> np.ndarray:
        """Posterior means of ``stamps`` (N, bands, S', S', on pixels of ``pixelScale`` arcsec) under
        ``encoder``, drawn as the MADNESS task draws its children: through the exposure's PSF
        (``psfImages``, per band) on its pixels for model-frame models, shifted by ``offsets`` (N, 2) = (dy, dx)."""
        import torch

        from ..deblend.fit import blendPixelRatio, encodeCutouts, observationKernels, observedStamps

        models = task.models
        device = models.device
        ratio = blendPixelRatio(models, pixelScale)
        scale = torch.as_tensor(models.imageScale(), dtype=torch.float32, device=device).view(1, -1, 1, 1)
        with torch.no_grad():
            x = torch.as_tensor(stamps, dtype=torch.float32, device=device) / scale
            latents = encodeCutouts(models, getattr(models, encoder), x, ratio)
            shifts = torch.as_tensor(offsets, dtype=torch.float32, device=device) if task.config.subpixelShift else None
            kernels = observationKernels(models, [psfImages], device, pixelScale=pixelScale)
            if kernels is not None:
                kernels = kernels.expand(len(stamps), *kernels.shape[1:])
            return observedStamps(models, latents, shifts, kernels, ratio).cpu().numpy()

    def _singlePass(self, task, mExposure, parents, out, matches):
        from ..deblend import makeBlend

        for parent in parents:
            blend = makeBlend(mExposure, parent.getFootprint(), task.blendStampSize(mExposure))
            stamps = self._decodeStamps(task, blend.cutouts, "deblenderEncoder", blend.subpixel, blend.psfImages,
                                        blend.pixelScale)
            for k, peak in enumerate(parent.getFootprint().getPeaks()):
                galaxy = matches.get(int(peak.getId()))
                if galaxy is not None:
                    _add(out[galaxy], stamps[k], blend.canvasBox.getMinY() + blend.rows[k],
                         blend.canvasBox.getMinX() + blend.cols[k])
        return out

    def _fidelity(self, task, scene, out, mExposure):
        offsets = scene.positions[:, ::-1] - np.floor(scene.positions[:, ::-1] + 0.5)  # (dy, dx)
        psfs = mExposure.getPsfs()
        scale = mExposure.getPixelScale()
        decoded = self._decodeStamps(task, scene.isolatedNoisy, "encoder", offsets,
                                     None if psfs is None or None in psfs else [p.kernel for p in psfs],
                                     None if scale is None else scale.asArcseconds())
        for i in range(len(decoded)):
            _add(out[i], decoded[i], int(scene.truth["stamp_y0"][i]), int(scene.truth["stamp_x0"][i]))
        return out


def templateFit(scene, out: np.ndarray) -> np.ndarray:
    r"""Each galaxy's noiseless image times its weighted least-squares amplitude, per band, over the field.

    With :math:`T_{kbp}` galaxy :math:`k`'s noiseless image (placed on the field), :math:`y_{bp}` the
    noisy field and :math:`w_{bp} = 1/\sigma^2_{bp}`, the amplitudes solve
    :math:`\sum_p w_{bp} T_{jbp} (y_{bp} - \sum_k a_{kb} T_{kbp}) = 0` for every :math:`j`: the
    minimum-variance unbiased estimate when the shapes are known (the Gauss-Markov theorem).

    Parameters
    ----------
    scene : TestFields scene
        Its ``isolated`` noiseless stamps, ``truth`` stamp corners, ``image`` and ``variance``.
    out : numpy.ndarray
        (galaxies, bands, H, W) zeros, filled and returned.

    Returns
    -------
    numpy.ndarray
        ``out``: galaxy :math:`k`'s prediction :math:`a_{kb} T_{kb}`.
    """
    n = len(out)
    for i in range(n):
        _add(out[i], scene.isolated[i], int(scene.truth["stamp_y0"][i]), int(scene.truth["stamp_x0"][i]))
    for band in range(out.shape[1]):
        templates = out[:, band].reshape(n, -1)
        used = np.flatnonzero(np.any(templates != 0, axis=0))
        weight = 1.0 / np.maximum(scene.variance[band].reshape(-1)[used], 1e-12)
        design = templates[:, used].T * np.sqrt(weight)[:, None]
        amplitude = np.linalg.lstsq(design, scene.image[band].reshape(-1)[used] * np.sqrt(weight), rcond=None)[0]
        out[:, band] *= amplitude[:, None, None]
    return out


def variantSpec(spec: str | None) -> tuple[str | None, dict[str, str]]:
    """A variant's model directory and MadnessDeblendConfig overrides: ``"DIR"``, ``"?KEY=VALUE&KEY=VALUE"``
    (the run's models) or ``"DIR?KEY=VALUE"``; the values are strings that the config's fields convert.

    >>> variantSpec("runs/cpu4/models"), variantSpec("?optimizer=lm&lmTolerance=0.1")
    (('runs/cpu4/models', {}), (None, {'optimizer': 'lm', 'lmTolerance': '0.1'}))
    """
    if spec is None:
        return None, {}
    directory, _, query = spec.partition("?")
    overrides = dict(item.split("=", 1) for item in query.split("&") if item)
    return directory or None, overrides


def _add(canvas: np.ndarray, image: np.ndarray, y0: int, x0: int) -> None:
    """Add ``image`` (bands, h, w) with its corner at (y0, x0) to ``canvas`` (bands, H, W), clipped."""
    _, height, width = canvas.shape
    h, w = image.shape[-2:]
    ya, xa = max(y0, 0), max(x0, 0)
    yb, xb = min(y0 + h, height), min(x0 + w, width)
    if ya < yb and xa < xb:
        canvas[:, ya:yb, xa:xb] += image[:, ya - y0:yb - y0, xa - x0:xb - x0]


def _allPeaks(parents) -> list:
    """Every peak of ``parents``' footprints."""
    return [p for record in parents for p in record.getFootprint().getPeaks()]


def _matchPeakRecords(peaks: list, positions: np.ndarray | None, taken: set[int],
                      radius: float | None = None) -> tuple[dict[int, int], int]:
    """Peak id → galaxy row for ``peaks``: the nearest galaxy within ``radius`` (default
    :data:`~..sim.inputs.MATCH_RADIUS`) not in ``taken``, each galaxy once; and the unmatched count."""
    from ..sim.inputs import MATCH_RADIUS

    if positions is None or not peaks:
        return {}, len(peaks)
    radius = MATCH_RADIUS if radius is None else radius
    candidates = []
    for peak in peaks:
        distance = np.hypot(positions[:, 0] - peak.getFx(), positions[:, 1] - peak.getFy())
        for row in np.flatnonzero(distance <= radius):
            if int(row) not in taken:
                candidates.append((float(distance[row]), int(peak.getId()), int(row)))
    matches: dict[int, int] = {}
    used = set(taken)
    for _, peak, galaxy in sorted(candidates):
        if peak not in matches and galaxy not in used:
            matches[peak] = galaxy
            used.add(galaxy)
    return matches, len(peaks) - len(matches)


def _matchPeaks(parents, positions: np.ndarray, radius: float) -> tuple[dict[int, int], int]:
    """Peak id → galaxy row: the nearest galaxy within ``radius``, each galaxy once; and the spurious count."""
    peaks = _allPeaks(parents)
    if len({p.getId() for p in peaks}) != len(peaks):
        raise ValueError("peak ids are not unique across the parents; cannot match peaks to galaxies")
    return _matchPeakRecords(peaks, positions, set(), radius)


def evaluateField(scene, dataset, methods: FieldMethods, peaks: str = "truth") -> dict:
    """Metrics of every galaxy of ``scene`` for every method, and the methods' timings (module docstring)."""
    from ..afw.geom import Point2I
    from ..detect import detectParents
    from ..sim.inputs import MATCH_RADIUS, fieldExposure

    mExposure = fieldExposure(scene, dataset)
    parents = detectParents(mExposure, peaks=scene.positions if peaks == "truth" else "detected")
    matches, spurious = _matchPeaks(parents, scene.positions, MATCH_RADIUS)
    bands = list(dataset.bands)
    n, size = len(scene), scene.isolated.shape[-1]
    truth = scene.truth
    x, y = scene.positions[:, 0], scene.positions[:, 1]
    pixel = dataset.renderer.conditions.pixelScale
    aHlr, bHlr, theta = _apertureShape(truth)
    fwhm = np.array([dataset.renderer.conditions.band(b).psfFwhm for b in bands]) / pixel
    a, b = metrics.apertureAxes(aHlr[None] / pixel, bHlr[None] / pixel, fwhm[:, None])  # (bands, n)

    isolated = np.zeros((n, len(bands), *scene.image.shape[1:]))
    for i in range(n):
        _add(isolated[i], scene.isolated[i], int(truth["stamp_y0"][i]), int(truth["stamp_x0"][i]))
    noise = scene.image - scene.noiseless
    photometry = lambda image: metrics.multibandAperturePhotometry(image, x, y, a, b, theta)  # noqa: E731
    F = np.stack([photometry(isolated[i] + noise)[:, i] for i in range(n)])  # (n, bands)
    Fb = photometry(scene.image).T
    snr = np.sqrt(np.sum(scene.isolated**2 / np.maximum(_stamps(scene.variance, truth, size), 1e-12), axis=(2, 3)))
    kappa = metrics.contamination(Fb, F)
    beta = np.stack([metrics.blendedness(isolated[i], scene.noiseless) for i in range(n)])
    r, g = bands.index("r"), bands.index("g")
    eTrue = np.array([morphology.ellipticity(scene.isolated[i, r]) for i in range(n)])
    colourCatalogue = np.asarray(truth["g_ab"], float) - np.asarray(truth["r_ab"], float)

    rows = [{"galaxy": i, "x": float(x[i]), "y": float(y[i]), "r_ab": float(truth["r_ab"][i]), "matched": True,
             "snr": snr[i].tolist(), "kappa": kappa[i].tolist(), "beta": beta[i].tolist()} for i in range(n)]
    matchedGalaxies = set(matches.values())
    for i in range(n):
        rows[i]["matched"] = i in matchedGalaxies
        if i not in matchedGalaxies:  # an unrecognised blend, or a galaxy detection did not see at all
            point = Point2I(int(round(x[i])), int(round(y[i])))
            rows[i]["inFootprint"] = any(parent.getFootprint().contains(point) for parent in parents)
    timings: dict[str, float] = {}
    residualPeaks: dict[str, dict[str, int]] = {}
    for method in methods.methods:
        start = time.perf_counter()
        predictions = None if method == "none" else methods.predict(method, mExposure, parents, n, matches, scene)
        timings[method] = time.perf_counter() - start
        recovered = methods.recoveredGalaxies.pop(method, set())
        if method in methods.residualPeaks:
            residualPeaks[method] = methods.residualPeaks.pop(method)
        total = None if predictions is None else predictions.sum(axis=0)
        Fd = Fb if predictions is None else np.stack(
            [photometry(scene.image - (total - predictions[i]))[:, i] for i in range(n)])
        for i in range(n):
            result = {"deltaF": metrics.relativeFluxError(Fd[i], F[i]).tolist(),
                      "colourT": float(metrics.colourResidual(Fd[i, g], Fd[i, r],
                                                              10 ** (-0.4 * colourCatalogue[i]), 1.0)),
                      "colourB": float(metrics.colourResidual(Fd[i, g], Fd[i, r], F[i, g], F[i, r]))}
            if predictions is not None:
                stamp = _stamps(predictions[i], truth[i:i + 1], size)[0]
                result["cosine"] = morphology.cosineSimilarity(stamp, scene.isolated[i]).tolist()
                result["ssim"] = morphology.ssim(stamp, scene.isolated[i]).tolist()
                e = morphology.ellipticity(stamp[r])
                result["e1"], result["e2"] = float(e[0] - eTrue[i, 0]), float(e[1] - eTrue[i, 1])
            if i not in matchedGalaxies and method in residualPeaks:
                result["recovered"] = i in recovered
            rows[i][method] = result
    return {"index": int(scene.meta["index"]), "nGalaxies": n, "nParents": len(parents),
            "nPeaks": sum(len(p.getFootprint().getPeaks()) for p in parents), "nMissed": n - len(matchedGalaxies),
            "nSpurious": spurious, "seconds": timings, "bands": bands, "galaxies": rows,
            **({"residualPeaks": residualPeaks} if residualPeaks else {})}


def _stamps(image: np.ndarray, truth, size: int) -> np.ndarray:
    """(n, bands, size, size) cut-outs of a field-sized ``image`` at the truth's stamp corners (zero outside)."""
    out = np.zeros((len(truth), image.shape[0], size, size))
    for i in range(len(truth)):
        y0, x0 = int(truth["stamp_y0"][i]), int(truth["stamp_x0"][i])
        _add(out[i], image, -y0, -x0)
    return out
