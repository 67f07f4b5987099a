"""Butler formatters of the package's `MultibandExposure`, `SourceCatalog` and model data.

All wrap the types' own ``readFits``/``writeFits`` (the package's FITS formats,
:doc:`/file-formats`). They are declared for the storage classes ``MadnessMultibandExposure``,
``MadnessSourceCatalog`` and ``MadnessModelData`` in ``pipeline/butler/datastore.yaml``.
"""

from __future__ import annotations

__all__ = ["ModelDataFormatter", "MultibandExposureFormatter", "SourceCatalogFormatter"]

from typing import Any

from .butlerConfig import INSTALL_HINT

try:
    from lsst.daf.butler import FormatterV2
    from lsst.resources import ResourcePath
except ImportError as error:
    raise ImportError(f"lsst.meas.extensions.madness.pipeline.formatters: {INSTALL_HINT}") from error

from ..afw.exposure import MultibandExposure
from ..afw.table import SourceCatalog


class MultibandExposureFormatter(FormatterV2):
    """Read and write a `MultibandExposure` as the package's multiband exposure FITS file.

    Parameters
    ----------
    *args : `~typing.Any`
        Arguments of `lsst.daf.butler.FormatterV2`.
    **kwargs : `~typing.Any`
        Keyword arguments of `lsst.daf.butler.FormatterV2`.
    """

    default_extension = ".fits"
    # The FITS readers take a path; the butler copies a remote file to a local one first.
    can_read_from_local_file = True

    def read_from_local_file(self, path: str, component: str | None = None, expected_size: int = -1) -> Any:
        """Read the exposure.

        Parameters
        ----------
        path : `str`
            Local FITS file.
        component : `str` or `None`, optional
            Not supported: the storage class has no components.
        expected_size : `int`, optional
            Size of the file if known (unused).

        Returns
        -------
        mExposure : `MultibandExposure`
            The exposure.
        """
        return MultibandExposure.readFits(path)

    def write_local_file(self, in_memory_dataset: Any, uri: ResourcePath) -> None:
        """Write the exposure.

        Parameters
        ----------
        in_memory_dataset : `MultibandExposure`
            The exposure.
        uri : `lsst.resources.ResourcePath`
            Local file to write.
        """
        in_memory_dataset.writeFits(uri.ospath)


class SourceCatalogFormatter(FormatterV2):
    """Read and write a `SourceCatalog` (footprints, peaks, heavy footprints) as the package's
    catalogue FITS file.

    Parameters
    ----------
    *args : `~typing.Any`
        Arguments of `lsst.daf.butler.FormatterV2`.
    **kwargs : `~typing.Any`
        Keyword arguments of `lsst.daf.butler.FormatterV2`.
    """

    default_extension = ".fits"
    can_read_from_local_file = True

    def read_from_local_file(self, path: str, component: str | None = None, expected_size: int = -1) -> Any:
        """Read the catalogue.

        Parameters
        ----------
        path : `str`
            Local FITS file.
        component : `str` or `None`, optional
            Not supported: the storage class has no components.
        expected_size : `int`, optional
            Size of the file if known (unused).

        Returns
        -------
        catalog : `SourceCatalog`
            The catalogue.
        """
        return SourceCatalog.readFits(path)

    def write_local_file(self, in_memory_dataset: Any, uri: ResourcePath) -> None:
        """Write the catalogue.

        Parameters
        ----------
        in_memory_dataset : `SourceCatalog`
            The catalogue.
        uri : `lsst.resources.ResourcePath`
            Local file to write.
        """
        in_memory_dataset.writeFits(uri.ospath)


class ModelDataFormatter(FormatterV2):
    """Read and write the deblender's `~lsst.meas.extensions.madness.deblend.blendModel.ModelData`
    as the package's model-data FITS file (:mod:`~lsst.meas.extensions.madness.io.modelDataFits`).

    Parameters
    ----------
    *args : `~typing.Any`
        Arguments of `lsst.daf.butler.FormatterV2`.
    **kwargs : `~typing.Any`
        Keyword arguments of `lsst.daf.butler.FormatterV2`.
    """

    default_extension = ".fits"
    can_read_from_local_file = True

    def read_from_local_file(self, path: str, component: str | None = None, expected_size: int = -1) -> Any:
        """Read the model data.

        Parameters
        ----------
        path : `str`
            Local FITS file.
        component : `str` or `None`, optional
            Not supported: the storage class has no components.
        expected_size : `int`, optional
            Size of the file if known (unused).

        Returns
        -------
        modelData : `~lsst.meas.extensions.madness.deblend.blendModel.ModelData`
            The models, in the deblender's units as the deblend task returned them.
        """
        # Imported here: the deblend package brings torch, which reading a catalogue or coadd does not need.
        from ..deblend.blendModel import ModelData

        return ModelData.readFits(path)

    def write_local_file(self, in_memory_dataset: Any, uri: ResourcePath) -> None:
        """Write the model data.

        Parameters
        ----------
        in_memory_dataset : `~lsst.meas.extensions.madness.deblend.blendModel.ModelData`
            The models.
        uri : `lsst.resources.ResourcePath`
            Local file to write.
        """
        in_memory_dataset.writeFits(uri.ospath)
