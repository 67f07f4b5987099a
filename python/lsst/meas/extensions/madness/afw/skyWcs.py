r"""World coordinates, named as in ``lsst.afw.geom``: :class:`SkyWcs` and :func:`makeSkyWcs`.

A :class:`SkyWcs` maps the parent pixel coordinates of an exposure (LSST's convention: the
centre of pixel ``(x, y)`` is at ``(x, y)``, the image's pixel ``[0, 0]`` at ``xy0``) to the sky.
It wraps an ``astropy.wcs.WCS`` (any FITS projection astropy reads, SIP distortion included),
loaded on first use so that the data model imports without astropy. FITS headers number
pixels from 1 on the stored array; :meth:`SkyWcs.copyAtShiftedPixelOrigin` moves between that
frame and the parent frame, as afw does when it reads and writes exposures.

Examples
--------
>>> from lsst.meas.extensions.madness.afw.geom import Point2D, SpherePoint, arcseconds, degrees
>>> import numpy as np
>>> scale = (0.2 * arcseconds).asDegrees()
>>> wcs = makeSkyWcs(Point2D(50.0, 50.0), SpherePoint(150.0, 2.0, degrees), np.array([[-scale, 0], [0, scale]]))
>>> sky = wcs.pixelToSky(60.0, 50.0)
>>> round(sky.getRa().asDegrees(), 6), round(sky.getDec().asDegrees(), 6)
(149.999444, 2.0)
>>> back = wcs.skyToPixel(sky)
>>> round(wcs.getPixelScale().asArcseconds(), 9), round(back.x, 6), round(back.y, 6)
(0.2, 60.0, 50.0)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

import numpy as np

from .geom import Angle, Point2D, SpherePoint, degrees

__all__ = ["SkyWcs", "makeSkyWcs"]


def _astropyWcs(header: Mapping):
    from astropy.io import fits
    from astropy.wcs import WCS, FITSFixedWarning

    cards = fits.Header()
    for key, value in header.items():
        cards[key] = value
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FITSFixedWarning)  # e.g. 'datfix': a missing MJD-OBS is filled in
        wcs = WCS(cards, naxis=2, relax=True)
    if not (wcs.has_celestial and wcs.wcs.lng == 0 and wcs.wcs.lat == 1):
        raise ValueError(f"not a celestial WCS with longitude and latitude on axes 1 and 2 "
                         f"(CTYPE = {list(wcs.wcs.ctype)})")
    return wcs


class SkyWcs:
    """A celestial WCS in parent pixel coordinates.

    Parameters
    ----------
    metadata
        FITS WCS keywords (``CTYPE1/2``, ``CRPIX1/2``, ``CRVAL1/2``, ``CD1_1`` ... or ``CDELT``/``PC``,
        optionally SIP), whose pixel frame is the parent frame (``CRPIX`` 1-based, as afw's
        :meth:`getFitsMetadata` writes it). :func:`makeSkyWcs` makes one from a reference point
        and a CD matrix.

    Raises
    ------
    ValueError
        If the keywords do not describe a celestial WCS astropy can read.
    """

    def __init__(self, metadata: Mapping):
        self._metadata = dict(metadata)
        self._wcs = _astropyWcs(self._metadata)

    def pixelToSky(self, x, y=None) -> SpherePoint:
        """The sky position of parent pixel position ``(x, y)`` (or a :class:`Point2D`)."""
        x, y = (x.getX(), x.getY()) if y is None else (x, y)
        ra, dec = self._wcs.all_pix2world(np.array([[float(x), float(y)]]), 0)[0]
        return SpherePoint(float(ra), float(dec), degrees)

    def pixelToSkyArray(self, x, y, degrees: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Right ascensions and declinations of arrays of positions (radians, or degrees)."""
        ra, dec = self._wcs.all_pix2world(np.asarray(x, np.float64), np.asarray(y, np.float64), 0)
        ra = np.mod(ra, 360.0)
        return (ra, dec) if degrees else (np.deg2rad(ra), np.deg2rad(dec))

    def skyToPixel(self, sky: SpherePoint) -> Point2D:
        """The parent pixel position of ``sky``."""
        x, y = self._wcs.all_world2pix(np.array([[sky.getRa().asDegrees(), sky.getDec().asDegrees()]]), 0)[0]
        return Point2D(float(x), float(y))

    def skyToPixelArray(self, ra, dec, degrees: bool = False) -> tuple[np.ndarray, np.ndarray]:
        ra, dec = np.asarray(ra, np.float64), np.asarray(dec, np.float64)
        if not degrees:
            ra, dec = np.rad2deg(ra), np.rad2deg(dec)
        return self._wcs.all_world2pix(ra, dec, 0)

    def getPixelOrigin(self) -> Point2D:
        """The reference pixel, in parent pixel coordinates."""
        x, y = self._wcs.wcs.crpix - 1.0
        return Point2D(float(x), float(y))

    def getSkyOrigin(self) -> SpherePoint:
        ra, dec = self._wcs.wcs.crval
        return SpherePoint(float(ra), float(dec), degrees)

    def getPixelScale(self, pixel: Point2D | None = None) -> Angle:
        """The side of a square pixel of the same solid angle as the pixel at ``pixel`` (default: the
        pixel origin), from the sky positions of its edges."""
        pixel = self.getPixelOrigin() if pixel is None else Point2D(*pixel)
        offsets = np.array([[-0.5, 0.0], [0.5, 0.0], [0.0, -0.5], [0.0, 0.5]])
        ra, dec = self.pixelToSkyArray(pixel.x + offsets[:, 0], pixel.y + offsets[:, 1])
        vectors = np.stack([np.cos(dec) * np.cos(ra), np.cos(dec) * np.sin(ra), np.sin(dec)], axis=1)
        area = np.linalg.norm(np.cross(vectors[1] - vectors[0], vectors[3] - vectors[2]))
        return Angle(float(np.sqrt(area)))

    def getCdMatrix(self) -> np.ndarray:
        """The CD matrix at the pixel origin, degrees per pixel."""
        return np.array(self._wcs.wcs.get_pc() * self._wcs.wcs.get_cdelt()[:, None])

    def isFlipped(self) -> bool:
        """Whether the pixel frame is flipped against the sky's (east to the left of north is not)."""
        return bool(np.linalg.det(self.getCdMatrix()) > 0)

    def getFitsMetadata(self, precise: bool = False) -> dict:
        """The FITS keywords of this WCS in the parent frame (``CRPIX`` 1-based)."""
        header = self._wcs.to_header(relax=True)
        return {key: header[key] for key in header if key not in ("COMMENT", "HISTORY", "")}

    def copyAtShiftedPixelOrigin(self, shift) -> SkyWcs:
        """This WCS with pixel coordinates shifted by ``shift`` ``(dx, dy)``: the sky position of
        ``(x, y)`` here is that of ``(x + dx, y + dy)`` in the copy."""
        dx, dy = (float(v) for v in shift)
        metadata = self.getFitsMetadata()
        metadata["CRPIX1"] = float(self._wcs.wcs.crpix[0]) + dx
        metadata["CRPIX2"] = float(self._wcs.wcs.crpix[1]) + dy
        return SkyWcs(metadata)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SkyWcs):
            return NotImplemented
        return self.getFitsMetadata() == other.getFitsMetadata()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        sky = self.getSkyOrigin()
        return (f"SkyWcs({'/'.join(self._wcs.wcs.ctype)}, origin pixel {tuple(self.getPixelOrigin())} at "
                f"({sky.getRa().asDegrees():.6f}, {sky.getDec().asDegrees():.6f}) deg, "
                f"{self.getPixelScale().asArcseconds():.4g} arcsec/pixel)")


def makeSkyWcs(crpix: Point2D, crval: SpherePoint, cdMatrix, projection: str = "TAN") -> SkyWcs:
    """A WCS with reference pixel ``crpix`` (parent coordinates) at ``crval``, CD matrix ``cdMatrix``
    (degrees per pixel, ``[[dRA/dx, dRA/dy], [dDec/dx, dDec/dy]]``) and a FITS ``projection``."""
    cd = np.asarray(cdMatrix, np.float64)
    if cd.shape != (2, 2) or not np.isfinite(cd).all() or np.linalg.det(cd) == 0:
        raise ValueError(f"cdMatrix must be a finite, invertible 2x2 matrix, got {cdMatrix!r}")
    crpix = Point2D(*crpix)
    return SkyWcs({
        "CTYPE1": f"RA---{projection}", "CTYPE2": f"DEC--{projection}", "CUNIT1": "deg", "CUNIT2": "deg",
        "CRPIX1": crpix.x + 1.0, "CRPIX2": crpix.y + 1.0,
        "CRVAL1": crval.getRa().asDegrees(), "CRVAL2": crval.getDec().asDegrees(),
        "CD1_1": cd[0, 0], "CD1_2": cd[0, 1], "CD2_1": cd[1, 0], "CD2_2": cd[1, 1],
    })
