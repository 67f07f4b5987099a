"""What a deblender found for one blend (:class:`BlendModel`) and for a whole exposure (:class:`ModelData`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..afw.geom import Box2I
from .footprints import ChildModels

__all__ = ["BlendModel", "ModelData", "NonFiniteModelError"]


class NonFiniteModelError(ArithmeticError):
    """A deblender returned a model with NaN or infinite values; its parent is failed, not written."""


@dataclass
class BlendModel:
    """The children's models of one blend, with the fit's diagnostics.

    ``method`` is the deblender that made it (``"madness"`` or ``"scarlet"``); a model made by a
    fallback deblender says why in ``fallbackReason``.
    """

    children: ChildModels
    iterations: int
    converged: bool
    runtime: float  # ms
    method: str
    logLikelihood: float = float("nan")
    logPrior: np.ndarray | None = None  # (K,), MADNESS only
    latents: np.ndarray | None = None  # (K, D), MADNESS only
    fallbackReason: str = ""
    timedOut: bool = False  # the fit ran out of its time budget before meeting its stopping rule

    @property
    def finite(self) -> bool:
        return bool(all(np.isfinite(image).all() for image in self.children.images)
                    and (self.logPrior is None or np.isfinite(self.logPrior).all())
                    and (self.latents is None or np.isfinite(self.latents).all()))


@dataclass
class ModelData:
    """The models of every deblended parent (``Struct.modelData`` of the deblend tasks).

    ``blends[parentId]`` is the parent's :class:`BlendModel`, whose child images lie on the canvas
    ``boxes[parentId]`` (exposure pixel coordinates), in the deblender's pixel units: divide them by
    ``toDeblender`` (per band; None: 1) for the exposure's (:mod:`.calibration`).
    """

    bands: tuple[str, ...]
    blends: dict[int, BlendModel] = field(default_factory=dict)
    boxes: dict[int, Box2I] = field(default_factory=dict)
    toDeblender: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.blends)

    def modelImage(self, parentId: int) -> np.ndarray:
        """Sum of the parent's children on its canvas (bands, H, W)."""
        box = self.boxes[parentId]
        return self.blends[parentId].children.total((len(self.bands), box.getHeight(), box.getWidth()))
