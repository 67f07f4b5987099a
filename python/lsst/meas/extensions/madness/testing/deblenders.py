"""A deblender for tests: cheap, exact and free of any model."""

from __future__ import annotations

import numpy as np

from ..deblend import BlendModel, ChildModels, DeblendBaseTask

__all__ = ["EqualShareDeblendTask", "quickMadnessTask"]


class EqualShareDeblendTask(DeblendBaseTask):
    """Each peak's child is the parent's (non-negative, weighted) data shared equally.

    A stand-in for the SCARLET fallback where a test needs a fallback deblender but not its
    JAX compilation: retarget ``config.fallback`` to it.

    Examples
    --------
    >>> from lsst.meas.extensions.madness.deblend import MadnessDeblendConfig
    >>> config = MadnessDeblendConfig()
    >>> config.fallback.retarget(EqualShareDeblendTask)
    """

    _DefaultName = "equalShare"
    method = "equalShare"

    def defaultBands(self) -> tuple[str, ...]:
        return tuple("ugrizy")

    def modelBlends(self, mExposure, blends, parents) -> list[BlendModel | Exception]:
        results: list[BlendModel | Exception] = []
        for blend in blends:
            share = np.clip(blend.data, 0, None) * (blend.weight > 0) / blend.nPeaks
            corners = np.zeros(blend.nPeaks, int)
            results.append(BlendModel(ChildModels([share] * blend.nPeaks, corners, corners), 1, True, 0.0,
                                      self.method))
        return results


def quickMadnessTask(modelDir, schema, cheapFallback: bool = True, **config):
    """A ``MadnessDeblendTask`` for tests: 2-5 MAP steps on the CPU, models from ``modelDir``.

    With ``cheapFallback`` the fallback is :class:`EqualShareDeblendTask` instead of SCARLET,
    whose JAX compilation takes seconds per parent. ``config`` sets further config fields.
    """
    from ..deblend import MadnessDeblendConfig, MadnessDeblendTask

    cfg = MadnessDeblendConfig(modelDir=str(modelDir), maxIter=5, minIter=2, device="cpu")
    if cheapFallback:
        cfg.fallback.retarget(EqualShareDeblendTask)
    for key, value in config.items():
        setattr(cfg, key, value)
    return MadnessDeblendTask(schema, config=cfg)
