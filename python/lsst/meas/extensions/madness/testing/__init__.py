"""Test helpers: mocked multiband exposures of galaxies with known truth."""

from .mocks import *  # noqa: F403
