r"""The paper's three simulated data sets: IsolatedSims, BlendedSims and TestFields.

Each data set is an indexable, deterministic sequence of *scenes*: item ``k`` depends only on
the catalogue, the split, the seed and ``k`` (its random stream is
``SeedSequence([seed, kind, split, k])``), so the same item can be made again in any worker
process, in any order, and different kinds and splits never share noise.

=========================  ==================================================================
data set                   a scene (paper Sec. 2.1-2.2)
=========================  ==================================================================
:class:`IsolatedSims`      one galaxy in a 45×45 stamp, its centre uniform within the central
                           pixel; noisy input and noiseless target.
:class:`BlendedSims`       1-3 galaxies (uniform) whose centres are uniform in a 20×20 pixel
                           box; a 45×45 stamp around each galaxy in turn, with that galaxy's
                           noiseless isolated image as target.
:class:`TestFields`        a 205×205 field of 12-20 galaxies (uniform) centred uniformly in
                           the inner 150×150 pixels, no two centres in one pixel; per galaxy
                           its noiseless isolated image and its isolated image with the
                           field's own noise.
=========================  ==================================================================

Galaxies come from one split of a CatSim-format catalogue (:mod:`.splits`), so training and
validation scenes never show a test galaxy. Rendering and noise are those of
:class:`~.render.SceneRenderer`.

References
----------
Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 2.1-2.2 and Fig. 2.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from astropy.table import Table
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .render import GalaxyStamp, SceneRenderer, galaxyElectrons
from .splits import DEFAULT_SPLIT_FRACTIONS, SPLITS, selectSplit
from .survey import LSST_CONDITIONS, SurveyConditions

__all__ = ["SimulationConfig", "Scene", "IsolatedSims", "BlendedSims", "TestFields", "DATASETS"]

# Catalogue columns copied into every scene's truth table.
_TRUTH_COLUMNS = (
    "galtileid", "redshift", "bulge_fraction", "agn_fraction",
    "hlr_bulge", "q_bulge", "hlr_disk", "q_disk", "pa_bulge", "pa_disk",
)  # fmt: skip


class SimulationConfig(BaseModel):
    """Geometry of the simulated data sets (defaults: the paper's Sec. 2.1-2.2)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    stampSize: int = Field(45, description="Side of a galaxy stamp (model input and target), pixels; odd.")
    blendBoxSize: int = Field(20, description="BlendedSims: side of the box that holds the galaxies' centres, pixels.")
    blendGalaxies: tuple[int, int] = Field(
        (1, 3), description="BlendedSims: fewest and most galaxies in a scene (uniform).")
    fieldSize: int = Field(205, description="TestFields: side of a field, pixels.")
    fieldInnerSize: int = Field(
        150, description="TestFields: side of the central box holding the galaxies' centres, pixels.")
    fieldGalaxies: tuple[int, int] = Field(
        (12, 20), description="TestFields: fewest and most galaxies in a field (uniform).")
    maxRadius: int = Field(48, description="Each galaxy is drawn out to this many pixels from its centre.")
    psfSize: int = Field(41, description="Side of the stored PSF kernel images, pixels; odd.")
    splitFractions: tuple[float, float, float] = Field(
        DEFAULT_SPLIT_FRACTIONS, description="Fractions of galaxies in the train, validation and test splits."
    )

    @model_validator(mode="after")
    def _check(self) -> SimulationConfig:
        if self.stampSize < 3 or self.stampSize % 2 == 0:
            raise ValueError(f"stampSize must be odd and at least 3, got {self.stampSize}")
        for name in ("blendGalaxies", "fieldGalaxies"):
            low, high = getattr(self, name)
            if not 1 <= low <= high:
                raise ValueError(f"{name} must satisfy 1 <= fewest <= most, got {(low, high)}")
        if not 0 < self.fieldInnerSize <= self.fieldSize:
            raise ValueError(f"fieldInnerSize must be in (0, fieldSize={self.fieldSize}], got {self.fieldInnerSize}")
        if self.fieldGalaxies[1] > self.fieldInnerSize**2:
            raise ValueError(f"{self.fieldGalaxies[1]} galaxies cannot have distinct centre pixels in "
                             f"{self.fieldInnerSize}² pixels")
        if self.blendBoxSize < 0 or self.maxRadius < 1:
            raise ValueError("blendBoxSize must be >= 0 and maxRadius >= 1")
        return self


@dataclass(eq=False)
class Scene:
    """One simulated scene and, for each of its galaxies, its stamps and truth.

    Attributes
    ----------
    image, variance, noiseless
        ``(band, y, x)`` noisy image (sky subtracted), its noise variance, and the summed
        noiseless galaxies, ADU. Pixel ``[0, 0]`` is parent pixel ``(0, 0)``.
    positions
        ``(n, 2)`` true ``(x, y)`` centres of the galaxies.
    blended
        ``(n, band, s, s)`` stamp of :attr:`image` centred on each galaxy's centre pixel (zero
        outside the scene), with :attr:`blendedVariance`.
    isolated
        ``(n, band, s, s)`` each galaxy alone, noiseless, on the same stamp.
    isolatedNoisy
        Each galaxy alone with the scene's own noise realisation :math:`\\nu`, rescaled to
        the galaxy's own Poisson variance:
        :math:`m_i + \\nu \\sqrt{(m_i + s)/(M + s)}` for the galaxy :math:`m_i`, all
        galaxies :math:`M` and sky :math:`s`.
    truth
        One row per galaxy: catalogue parameters, ``x``, ``y``, ``flux_<band>`` (catalogue
        flux, ADU), ``stamp_x0``, ``stamp_y0`` (parent pixel of each stamp's ``[0, 0]``).
    """

    image: np.ndarray
    variance: np.ndarray
    noiseless: np.ndarray
    positions: np.ndarray
    blended: np.ndarray
    blendedVariance: np.ndarray
    isolated: np.ndarray
    isolatedNoisy: np.ndarray
    truth: Table
    meta: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.positions)


def _cut(array: np.ndarray, x0: int, y0: int, size: int) -> np.ndarray:
    """``array[:, y0:y0+size, x0:x0+size]`` with zeros where the box leaves ``array``."""
    return GalaxyStamp(array, 0, 0).cutout(x0, y0, size, size)


class _SimulatedSet:
    """Shared machinery: the split's galaxies, the renderer and per-item random streams."""

    kind: ClassVar[str]
    kindCode: ClassVar[int]
    defaultSplit: ClassVar[str]
    #: Per-galaxy arrays worth storing for this kind (see :mod:`.shards`).
    galaxyArrays: ClassVar[tuple[str, ...]]
    #: Whole-scene arrays worth storing for this kind.
    sceneArrays: ClassVar[tuple[str, ...]] = ()

    def __init__(
        self,
        catalog: Table,
        split: str | None = None,
        *,
        seed: int = 0,
        length: int | None = None,
        conditions: SurveyConditions = LSST_CONDITIONS,
        bands: Sequence[str] | None = None,
        config: SimulationConfig = SimulationConfig(),
    ):
        self.split = self.defaultSplit if split is None else split
        self.config = config
        self.seed = int(seed)
        self.galaxies = selectSplit(catalog, self.split, config.splitFractions)
        self._columns = {name: np.asarray(self.galaxies[name]) for name in self.galaxies.colnames}
        self.renderer = SceneRenderer(conditions, bands, psfSize=config.psfSize, maxRadius=config.maxRadius)
        self.bands = self.renderer.bands
        self.length = self._defaultLength() if length is None else int(length)
        if self.length < 0:
            raise ValueError(f"length must be non-negative, got {length}")

    def _defaultLength(self) -> int:
        return len(self.galaxies)

    def __len__(self) -> int:
        return self.length

    def describe(self) -> dict:
        """What fixes this data set's content (stored with written shards)."""
        return {
            "kind": self.kind,
            "split": self.split,
            "seed": self.seed,
            "bands": list(self.bands),
            "config": self.config.model_dump(mode="json"),
            "conditions": self.renderer.conditions.model_dump(mode="json"),
        }

    def rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng(np.random.SeedSequence([self.seed, self.kindCode, SPLITS.index(self.split),
                                                             int(index)]))

    def galaxy(self, row: int) -> dict:
        return {name: values[row] for name, values in self._columns.items()}

    def __getitem__(self, index: int) -> Scene:
        index = int(index)
        if index < 0:
            index += self.length
        if not 0 <= index < self.length:
            raise IndexError(f"{self.kind} index {index} out of range for length {self.length}")
        return self.make(index)

    def make(self, index: int) -> Scene:
        """Scene ``index`` (any non-negative integer: streams may run past :attr:`length`)."""
        if index < 0:
            raise IndexError(f"{self.kind} scene index must be non-negative, got {index}")
        return self._make(int(index), self.rng(index))

    def __iter__(self):
        return (self[k] for k in range(self.length))

    def _make(self, index: int, rng: np.random.Generator) -> Scene:
        raise NotImplementedError

    def compose(self, rows: Sequence[int], positions: np.ndarray, size: int, index: int = 0) -> Scene:
        """A ``size``² scene of the split's galaxies ``rows`` at ``positions`` (n, 2) = (x, y).

        The noise is that of scene ``index``'s random stream; for tests and benchmarks that
        need chosen galaxies at chosen separations.
        """
        positions = np.asarray(positions, dtype=float).reshape(-1, 2)
        if len(positions) != len(rows):
            raise ValueError(f"{len(rows)} galaxies but {len(positions)} positions")
        return self._scene(np.asarray(rows, dtype=int), positions, int(size), self.rng(index), index)

    def _scene(self, rows: np.ndarray, positions: np.ndarray, size: int, rng: np.random.Generator, index: int) -> Scene:
        """Render galaxies ``rows`` at ``positions`` in a ``size``² scene, add noise, cut stamps."""
        renderer = self.renderer
        galaxies = [self.galaxy(r) for r in rows]
        stamps = renderer.drawScene(galaxies, positions)
        noiseless = renderer.sumStamps(stamps, 0, 0, size, size)
        image, variance = renderer.addNoise(noiseless, rng)
        s = self.config.stampSize
        corners = np.floor(positions + 0.5).astype(int) - s // 2
        noise = image - noiseless
        sky = renderer.sky[:, None, None]
        blended, blendedVariance, isolated, isolatedNoisy = [], [], [], []
        for stamp, (x0, y0) in zip(stamps, corners):
            alone = stamp.cutout(x0, y0, s, s)
            total = np.maximum(_cut(noiseless, x0, y0, s), 0.0) + sky
            scale = np.sqrt((np.maximum(alone, 0.0) + sky) / total)
            blended.append(_cut(image, x0, y0, s))
            blendedVariance.append(_cut(variance, x0, y0, s))
            isolated.append(alone)
            isolatedNoisy.append(alone + _cut(noise, x0, y0, s) * scale)
        truth = Table({name: self._columns[name][rows] for name in _TRUTH_COLUMNS if name in self._columns})
        truth["x"], truth["y"] = positions[:, 0], positions[:, 1]
        fluxes = np.array([galaxyElectrons(g, renderer.conditions, self.bands) for g in galaxies]) / renderer.gain
        for b, band in enumerate(self.bands):
            truth[f"{band}_ab"] = self._columns[f"{band}_ab"][rows]
            truth[f"flux_{band}"] = fluxes[:, b]
        truth["stamp_x0"], truth["stamp_y0"] = corners[:, 0], corners[:, 1]
        stack = lambda arrays: np.stack(arrays).astype(np.float32)  # noqa: E731
        return Scene(
            image=image,
            variance=variance,
            noiseless=noiseless,
            positions=positions,
            blended=stack(blended),
            blendedVariance=stack(blendedVariance),
            isolated=stack(isolated),
            isolatedNoisy=stack(isolatedNoisy),
            truth=truth,
            meta={"kind": self.kind, "split": self.split, "seed": self.seed, "index": index},
        )


class IsolatedSims(_SimulatedSet):
    """One galaxy per 45×45 stamp, centred within the central pixel (paper's IsolatedSims).

    Item ``k`` shows galaxy ``permutation_e[k mod n]`` of the split's ``n`` galaxies, with a
    fresh permutation every epoch ``e = k // n``: each galaxy once per epoch, fresh noise
    and sub-pixel centre every time. ``length`` defaults to ``n`` (one epoch); a larger one
    streams further epochs.

    Examples
    --------
    >>> from lsst.meas.extensions.madness.sim.population import generatePopulation
    >>> catalog = generatePopulation(60, seed=1)
    >>> sims = IsolatedSims(catalog, "train", seed=0, bands=["g", "r"])
    >>> scene = sims[0]
    >>> scene.blended.shape, scene.isolated.shape
    ((1, 2, 45, 45), (1, 2, 45, 45))
    >>> bool(np.array_equal(sims[0].image, scene.image))
    True
    """

    kind = "isolated"
    kindCode = 1
    defaultSplit = "train"
    galaxyArrays = ("blended", "blendedVariance", "isolated")

    def _make(self, index: int, rng: np.random.Generator) -> Scene:
        n = len(self.galaxies)
        epoch, position = divmod(index, n)
        # A key one entry longer than the items' keys, so the shuffle stream is never an item's.
        key = [self.seed, self.kindCode, SPLITS.index(self.split), 0, epoch]
        order = np.random.default_rng(np.random.SeedSequence(key)).permutation(n)
        s = self.config.stampSize
        centre = np.array([[s // 2, s // 2]]) + rng.uniform(-0.5, 0.5, size=(1, 2))
        return self._scene(order[position : position + 1], centre, s, rng, index)


class BlendedSims(_SimulatedSet):
    """Scenes of 1-3 galaxies in a 20×20 pixel box; a 45×45 stamp around each (paper's BlendedSims).

    The scene is ``blendBoxSize + stampSize + 1`` pixels square, so every stamp lies inside
    it. Galaxies are drawn at random, without repetition within a scene, from the split.
    ``length`` (scenes) defaults to the number of galaxies in the split divided by the mean
    number per scene.
    """

    kind = "blended"
    kindCode = 2
    defaultSplit = "train"
    galaxyArrays = ("blended", "blendedVariance", "isolated")

    def _defaultLength(self) -> int:
        low, high = self.config.blendGalaxies
        return max(1, int(round(len(self.galaxies) / ((low + high) / 2))))

    @property
    def sceneSize(self) -> int:
        size = self.config.blendBoxSize + self.config.stampSize + 1
        return size + 1 - size % 2

    def _make(self, index: int, rng: np.random.Generator) -> Scene:
        low, high = self.config.blendGalaxies
        n = min(int(rng.integers(low, high + 1)), len(self.galaxies))
        rows = rng.choice(len(self.galaxies), size=n, replace=False)
        half = self.config.blendBoxSize / 2
        centre = self.sceneSize // 2
        positions = centre + rng.uniform(-half, half, size=(n, 2))
        return self._scene(rows, positions, self.sceneSize, rng, index)


class TestFields(_SimulatedSet):
    """205×205 fields of 12-20 galaxies centred in the inner 150×150 pixels (paper's TestFields).

    Centres are uniform over the inner box, re-drawn until no two share a pixel. ``length``
    (fields) defaults to the split's galaxies divided by the mean number per field.
    """

    __test__ = False  # not a pytest test class, despite its name
    kind = "fields"
    kindCode = 3
    defaultSplit = "test"
    galaxyArrays = ("isolated", "isolatedNoisy")
    sceneArrays = ("image", "variance", "noiseless")

    def _defaultLength(self) -> int:
        low, high = self.config.fieldGalaxies
        return max(1, int(round(len(self.galaxies) / ((low + high) / 2))))

    def _make(self, index: int, rng: np.random.Generator) -> Scene:
        config = self.config
        low, high = config.fieldGalaxies
        n = int(rng.integers(low, high + 1))
        if n > len(self.galaxies):
            raise ValueError(f"a field needs {n} galaxies but the {self.split!r} split has {len(self.galaxies)}")
        rows = rng.choice(len(self.galaxies), size=n, replace=False)
        start = (config.fieldSize - config.fieldInnerSize) / 2 - 0.5  # inner box edge, in pixel-centre coordinates
        positions = np.empty((0, 2))
        while len(positions) < n:
            candidate = start + rng.uniform(0.0, config.fieldInnerSize, size=(1, 2))
            pixel = np.floor(candidate + 0.5)
            if not np.any(np.all(np.floor(positions + 0.5) == pixel, axis=1)):
                positions = np.vstack([positions, candidate])
        return self._scene(rows, positions, config.fieldSize, rng, index)


#: The data sets by command-line name.
DATASETS: dict[str, type[_SimulatedSet]] = {"isolated": IsolatedSims, "blended": BlendedSims, "fields": TestFields}
