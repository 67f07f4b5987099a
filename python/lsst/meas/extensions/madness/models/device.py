"""Choosing the torch device: one rule for training and deblending (needs only torch)."""

from __future__ import annotations

import torch

__all__ = ["resolveDevice"]


def resolveDevice(name: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; otherwise the named device, checked to exist.

    Examples
    --------
    >>> resolveDevice("cpu")
    device(type='cpu')
    """
    if isinstance(name, str) and name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(name)!r} asked for but CUDA is not available here; use --device cpu or auto")
    return device
