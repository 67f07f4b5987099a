"""Test helpers: mocked multiband exposures of galaxies with known truth, and untrained tiny models."""

from .mocks import *  # noqa: F403
from .tinyModels import *  # noqa: F403
