"""Sizes and hyper-parameters of the MADNESS networks, with a "paper" and a "light" profile.

Where the paper (App. B.1) and the public reference code disagree, the **paper** profile
follows the code, because the code produced the paper's numbers: encoder filters
32/128/256/512 (the text says 64/128/256/128) and a flow without batch norm (the text
builds one, the code drops it). The **light** profile (the default) shrinks the decoder,
which dominates the cost of every MAP step a user pays for on each blend: transposed
convolutions 64/32/16 instead of 128/96/64 cost about 12 ms instead of 90 ms per MAP step for
16 galaxies on 2 CPU cores (reference facts).

References
----------
Biswas et al. 2025, A&A, "MADNESS deblender", App. B.1-B.3.
Papamakarios, Pavlakou & Murray 2017, "Masked Autoregressive Flow for Density Estimation".
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["EncoderConfig", "DecoderConfig", "FlowConfig", "ModelFrame", "ModelConfig", "PROFILES"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EncoderConfig(_Frozen):
    """Convolutional encoder: stride-2 convolutions, then two dense layers."""

    channels: tuple[int, ...] = Field((32, 128, 256, 512), description="Filters of each stride-2 convolution.")
    kernelSize: int = Field(5, description="Convolution kernel side, pixels; odd.")
    denseUnits: int = Field(512, description="Units of the hidden dense layer.")


class DecoderConfig(_Frozen):
    """Decoder: two dense layers, stride-2 transposed convolutions, a final 3×3 one, ReLU."""

    denseUnits: int = Field(512, description="Units of the first dense layer.")
    seedSize: int = Field(6, description="Side of the feature map the dense layers reshape to.")
    seedChannels: int = Field(128, description="Channels of that feature map.")
    channels: tuple[int, ...] = Field((128, 96, 64), description="Filters of each stride-2 transposed convolution.")
    kernelSize: int = Field(5, description="Transposed-convolution kernel side; odd.")
    outputActivation: Literal["relu", "softplus"] = Field(
        "relu", description="Activation of the output pixels: 'relu' (paper; a channel can die, stuck at zero) "
                            "or 'softplus' (positive, with a gradient everywhere).")


class ModelFrame(_Frozen):
    r"""Where and in which units the decoder draws galaxies, independent of any observation.

    Galaxies are drawn on ``pixelScale`` pixels convolved with a Gaussian **model PSF** of
    FWHM ``psfFwhm``, narrower than every PSF a user will bring, so that any observation is
    the model frame convolved with a difference kernel :math:`\tilde P_{\rm obs}/\tilde P_{\rm model}`.
    0.35″ is below the sharpest ground-based coadds (HSC, ≈ 0.5″) and the training range's
    lower end (0.45″), and keeps the frame sampled at 0.2″ pixels: the model PSF's transform
    is 0.066 at the Nyquist wavenumber :math:`\pi/s`, so decoded stamps hardly alias, and the
    difference kernel to any PSF from 0.45″ stays below 1 up to Nyquist. Pixel values are
    ``fluxUnit`` divided by the band's scale (``bandScales``, by default the sky noise per pixel at
    LSST 10-year depth), so every band enters the networks with unit noise.
    """

    pixelScale: float = Field(0.2, gt=0, description="Model-frame pixel side, arcsec.")
    psfFwhm: float = Field(0.35, gt=0, description="FWHM of the Gaussian model PSF, arcsec.")
    fluxUnit: Literal["nJy"] = Field("nJy", description="Flux unit of the model frame before band scaling.")
    bandScales: tuple[float, ...] = Field(description="fluxUnit per network unit, one per band, in band order.")

    @model_validator(mode="after")
    def _check(self) -> ModelFrame:
        if not self.bandScales or min(self.bandScales) <= 0:
            raise ValueError(f"bandScales must be positive, got {self.bandScales}")
        return self

    @classmethod
    def forSurvey(cls, bands, conditions=None, **fields) -> ModelFrame:
        """The frame at a survey's pixel scale whose band scales are its sky noise per pixel in nJy
        (default survey: LSST 10-year, the paper's Table 1).

        Parameters
        ----------
        bands : sequence of `str`
            The bands, in channel order (a string is one band per character).
        conditions : `~lsst.meas.extensions.madness.sim.survey.SurveyConditions`, optional
            The survey; None: ``LSST_CONDITIONS``.
        **fields
            Other fields of the frame (``psfFwhm``, ...), or overrides of ``pixelScale`` and ``bandScales``.

        Returns
        -------
        frame : `ModelFrame`
            At the survey's pixel scale, with its sky noise per pixel (nJy) as band scales.

        Examples
        --------
        >>> frame = ModelFrame.forSurvey("gr")
        >>> frame.pixelScale, frame.psfFwhm, [round(s, 2) for s in frame.bandScales]
        (0.2, 0.35, [1.17, 1.35])
        """
        from ..sim.survey import LSST_CONDITIONS
        from ..sim.trainingStamps import skyNoiseNJy

        conditions = conditions or LSST_CONDITIONS
        return cls(**{"pixelScale": conditions.pixelScale, "bandScales": skyNoiseNJy(conditions, bands), **fields})


class FlowConfig(_Frozen):
    """Masked autoregressive flow on the latents (zuko)."""

    transforms: int = Field(6, description="Number of MAF transforms.")
    hiddenFeatures: tuple[int, ...] = Field((32, 32), description="Hidden units of each autoregressive network.")
    roll: int = Field(3, description="Cyclic shift of the variable order between transforms (the fixed permutation).")


class ModelConfig(_Frozen):
    """Everything that fixes the networks' shapes and the data they expect."""

    profile: Literal["paper", "light", "tiny", "custom"] = Field(
        "light", description="Name of the profile these values come from.")
    bands: tuple[str, ...] = Field(("u", "g", "r", "i", "z", "y"), description="Input bands, in channel order.")
    stampSize: int = Field(45, description="Side of the input and output stamps, pixels.")
    latentDim: int = Field(16, description="Dimension of the latent space.")
    normalisation: float = Field(1e4, description="Pixels (electrons) are divided by this before entering the networks "
                                                  "(models without a modelFrame only).")
    modelFrame: ModelFrame | None = Field(
        None, description="The model frame the decoder draws in (PSF-free models); None: the decoder draws galaxies "
                          "as observed with the training survey's PSF, in electrons / normalisation.")
    encoder: EncoderConfig = Field(EncoderConfig(), description="Encoder sizes (also the VAE-deblender's).")
    decoder: DecoderConfig = Field(DecoderConfig(channels=(64, 32, 16), seedChannels=64), description="Decoder sizes.")
    flow: FlowConfig = Field(FlowConfig(), description="Latent-space flow prior.")

    @model_validator(mode="after")
    def _check(self) -> ModelConfig:
        if self.stampSize < 1 or self.latentDim < 1 or not self.bands:
            raise ValueError("stampSize, latentDim and bands must be positive / non-empty")
        size = self.decoder.seedSize * 2 ** len(self.decoder.channels)
        if size < self.stampSize:
            raise ValueError(
                f"the decoder makes {size}-pixel images from a {self.decoder.seedSize}-pixel seed and "
                f"{len(self.decoder.channels)} upsamplings, smaller than stampSize {self.stampSize}"
            )
        if not self.encoder.channels or not self.decoder.channels:
            raise ValueError("encoder and decoder need at least one convolution")
        if self.modelFrame is not None and len(self.modelFrame.bandScales) != len(self.bands):
            raise ValueError(f"modelFrame.bandScales has {len(self.modelFrame.bandScales)} values for "
                             f"{len(self.bands)} bands")
        return self

    @classmethod
    def fromProfile(cls, name: str, **overrides) -> ModelConfig:
        """The named profile (``"paper"``, ``"light"`` or ``"tiny"``), with optional field overrides.

        Parameters
        ----------
        name : `str`
            A key of :data:`PROFILES`: ``"paper"``, ``"light"`` (the shipped models') or ``"tiny"`` (a few
            thousand parameters, for tests and smoke runs only).
        **overrides
            Fields of :class:`ModelConfig` to replace (``bands``, ``modelFrame``, ...), validated.

        Returns
        -------
        config : `ModelConfig`
            The profile's config (the shared frozen instance when there are no overrides).

        Raises
        ------
        ValueError
            If the profile is unknown, or the overrides are not valid (a pydantic ``ValidationError``).

        Examples
        --------
        >>> config = ModelConfig.fromProfile("tiny", bands=("g", "r"))
        >>> config.profile, config.bands, config.decoder.channels, config.latentDim
        ('tiny', ('g', 'r'), (8, 8, 8), 16)
        >>> ModelConfig.fromProfile("huge")
        Traceback (most recent call last):
        ...
        ValueError: unknown model profile 'huge'; choose one of ['light', 'paper', 'tiny']
        """
        try:
            base = PROFILES[name]
        except KeyError:
            raise ValueError(f"unknown model profile {name!r}; choose one of {sorted(PROFILES)}") from None
        return cls.model_validate({**base.model_dump(), **overrides}) if overrides else base


PROFILES: dict[str, ModelConfig] = {
    "paper": ModelConfig(profile="paper", decoder=DecoderConfig()),
    # The text's encoder widths (App. B.1) keep the two shipped encoders at 2.5 M parameters
    # each, so all four artefacts fit in 30 MB.
    "light": ModelConfig(profile="light", encoder=EncoderConfig(channels=(64, 128, 256, 128))),
    # A few thousand parameters: for tests and smoke runs of the pipeline, never for science.
    "tiny": ModelConfig(
        profile="tiny",
        encoder=EncoderConfig(channels=(4, 8, 8, 8), denseUnits=16),
        decoder=DecoderConfig(denseUnits=16, seedChannels=8, channels=(8, 8, 8)),
        flow=FlowConfig(transforms=2, hiddenFeatures=(8, 8)),
    ),
}
