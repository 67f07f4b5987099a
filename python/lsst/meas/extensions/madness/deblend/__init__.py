"""Deblending stages: parents cut into blends (:mod:`.blends`), then fitted by the MAP core (:mod:`.mapCore`)."""

from .blends import *  # noqa: F401,F403
from .mapCore import *  # noqa: F401,F403
from .fit import *  # noqa: F401,F403
from .footprints import *  # noqa: F401,F403
