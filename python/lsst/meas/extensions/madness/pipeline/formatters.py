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



class _PackageFitsFormatter(FormatterV2):
    """A dataset in one of the package's FITS formats, read by its type's ``readFits`` and written
    by its ``writeFits``; a subclass says which type (:meth:`pythonType`).

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

    @staticmethod
    def pythonType() -> Any:
        """The class whose ``readFits`` reads the file."""
        raise NotImplementedError

    def read_from_local_file(self, path: str, component: str | None = None, expected_size: int = -1) -> Any:
        """Read the dataset.

        Parameters
        ----------
        path : `str`
            Local FITS file.
        component : `str` or `None`, optional
            Not supported: the storage classes have no components.
        expected_size : `int`, optional
            Size of the file if known (unused).

        Returns
        -------
        dataset : `~typing.Any`
            An instance of :meth:`pythonType`.
        """
        return self.pythonType().readFits(path)

    def write_local_file(self, in_memory_dataset: Any, uri: ResourcePath) -> None:
        """Write the dataset.

        Parameters
        ----------
        in_memory_dataset : `~typing.Any`
            An instance of :meth:`pythonType`.
        uri : `lsst.resources.ResourcePath`
            Local file to write.
        """
        in_memory_dataset.writeFits(uri.ospath)


class MultibandExposureFormatter(_PackageFitsFormatter):
    """A `~lsst.meas.extensions.madness.afw.exposure.MultibandExposure` as the package's multiband
    exposure FITS file (parameters: those of `lsst.daf.butler.FormatterV2`)."""

    @staticmethod
    def pythonType() -> type:
        from ..afw.exposure import MultibandExposure

        return MultibandExposure


class SourceCatalogFormatter(_PackageFitsFormatter):
    """A `~lsst.meas.extensions.madness.afw.table.SourceCatalog` (footprints, peaks, heavy footprints)
    as the package's catalogue FITS file (parameters: those of `lsst.daf.butler.FormatterV2`)."""

    @staticmethod
    def pythonType() -> type:
        from ..afw.table import SourceCatalog

        return SourceCatalog


class ModelDataFormatter(_PackageFitsFormatter):
    """The deblender's `~lsst.meas.extensions.madness.deblend.blendModel.ModelData` as the package's
    model-data FITS file (:mod:`~lsst.meas.extensions.madness.io.modelDataFits`), in the deblender's
    units as the deblend task returned it (parameters: those of `lsst.daf.butler.FormatterV2`)."""

    @staticmethod
    def pythonType() -> type:
        # Imported on use: the deblend package brings torch, which reading a catalogue or coadd does not need.
        from ..deblend.blendModel import ModelData

        return ModelData
