"""Deblending: parents cut into blends (:mod:`.blends`), fitted (:mod:`.mapCore`, :mod:`.fit`, or SCARLET in
:mod:`.scarletCore`), turned into children (:mod:`.footprints`) by the deblend tasks (:mod:`.madnessTask`,
:mod:`.scarletTask`, sharing :mod:`.baseTask`), in the pixel units of :mod:`.calibration`.
"""

from .baseTask import *  # noqa: F403
from .blendModel import *  # noqa: F403
from .blends import *  # noqa: F403
from .calibration import *  # noqa: F403
from .columns import *  # noqa: F403
from .fit import *  # noqa: F403
from .footprints import *  # noqa: F403
from .invariants import *  # noqa: F403
from .madnessTask import *  # noqa: F403
from .mapCore import *  # noqa: F403
from .scarletTask import *  # noqa: F403
from .skips import *  # noqa: F403
