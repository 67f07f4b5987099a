"""Deblending: the MAP core in latent space (issue 5 builds the tasks on it)."""

from .mapCore import *  # noqa: F401,F403
