"""Diagnostic PNG of one deblended parent: written, readable, sized by children, robust to masks."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from lsst.meas.extensions.madness.deblend.plots import drawBlendDiagnostics

SIZE = 25
BANDS = "gri"


def _blend(nChildren: int = 3, seed: int = 0):
    """A synthetic blend: Gaussian children with band-dependent fluxes, plus unit-variance noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[:SIZE, :SIZE]
    peaks = rng.uniform(5, SIZE - 5, (nChildren, 2))
    models = np.zeros((nChildren, len(BANDS), SIZE, SIZE))
    for k, (px, py) in enumerate(peaks):
        profile = np.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * (1.5 + k) ** 2))
        models[k] = rng.uniform(5, 50, len(BANDS))[:, None, None] * profile
    variance = np.ones((len(BANDS), SIZE, SIZE))
    data = models.sum(0) + rng.normal(size=variance.shape)
    return data, variance, models, peaks


def _draw(path, data, variance, models, peaks, **kwargs):
    # Any RuntimeWarning (divide by zero, nan median) or matplotlib warning fails the test.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return drawBlendDiagnostics(path, data, variance, models, BANDS, peaks, **kwargs)


def _grey(image: np.ndarray) -> int:
    """Pixels of the masked-pixel grey (0.6)."""
    return int(np.all(np.abs(image[..., :3] - 0.6) < 1e-3, axis=-1).sum())


def test_png_written_readable_and_grows_with_children(tmp_path):
    widths = []
    for nChildren in (1, 2, 3):
        data, variance, models, peaks = _blend(nChildren)
        footprint = np.hypot(*np.mgrid[:SIZE, :SIZE] - SIZE / 2) < SIZE / 3
        path = _draw(tmp_path / "nested" / f"blend{nChildren}.png", data, variance, models, peaks,
                     title="parent 42", childLabels=[f"id{k}" for k in range(nChildren)], footprint=footprint)
        assert path == tmp_path / "nested" / f"blend{nChildren}.png"
        assert 0 < path.stat().st_size < 1_000_000
        image = imread(path)
        assert image.ndim == 3 and image[..., :3].std() > 0.05  # drawn, not blank
        widths.append(image.shape[1])
    assert widths[0] < widths[1] < widths[2]


def test_masked_pixels_are_grey_and_warning_free(tmp_path):
    data, variance, models, peaks = _blend()
    clean = imread(_draw(tmp_path / "clean.png", data, variance, models, peaks))
    variance[0, :10] = 0.0
    variance[1, :, :5] = np.nan
    variance[2, 3, 3] = np.inf
    data[2, 20, 20] = np.nan
    variance[:, 0, 0] = 0.0
    masked = imread(_draw(tmp_path / "masked.png", data, variance, models, peaks))
    assert masked.shape == clean.shape
    assert _grey(masked) > _grey(clean) + 500


def test_fully_masked_band_and_no_children(tmp_path):
    data, variance, models, peaks = _blend()
    variance[1] = 0.0
    assert _draw(tmp_path / "allmasked.png", data, variance, models, peaks).stat().st_size > 0
    path = _draw(tmp_path / "empty.png", data, np.ones_like(data), models[:0], peaks[:0])
    assert imread(path).shape[1] > 0


def test_max_children_caps_width_and_says_so_in_title(tmp_path, monkeypatch):
    titles = []
    suptitle = Figure.suptitle
    monkeypatch.setattr(Figure, "suptitle", lambda self, text, **kw: titles.append(text) or suptitle(self, text, **kw))
    widths = {}
    for nChildren in (2, 3, 5):
        data, variance, models, peaks = _blend(nChildren)
        widths[nChildren] = imread(_draw(tmp_path / f"c{nChildren}.png", data, variance, models, peaks,
                                         maxChildren=2)).shape[1]
    assert widths[2] == widths[3] == widths[5]
    assert "more children" not in titles[0]
    assert "+1 more children not shown" in titles[1]
    assert "+3 more children not shown" in titles[2]


@pytest.mark.parametrize("change, name", [
    (dict(variance=np.ones((3, SIZE, SIZE + 1))), "variance"),
    (dict(data=np.ones((SIZE, SIZE))), "data"),
    (dict(models=np.ones((3, 2, SIZE, SIZE))), "models"),
    (dict(peaks=np.ones((2, 2))), "peaks"),
    (dict(peaks=np.ones((3, 3))), "peaks"),
    (dict(bands="gr"), "bands"),
    (dict(childLabels=["a", "b"]), "childLabels"),
    (dict(footprint=np.ones((SIZE, SIZE + 2), bool)), "footprint"),
])
def test_bad_shapes_raise_naming_the_argument(tmp_path, change, name):
    data, variance, models, peaks = _blend()
    args = dict(data=data, variance=variance, models=models, bands=BANDS, peaks=peaks)
    args.update(change)
    path = tmp_path / "bad.png"
    with pytest.raises(ValueError, match=name) as error:
        drawBlendDiagnostics(path, **args)
    assert "shape" in str(error.value)
    assert not path.exists()
