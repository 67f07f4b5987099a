"""Choosing the torch device: one rule for training and deblending (needs only torch)."""

from __future__ import annotations

import torch

__all__ = ["checkDeviceName", "resolveDevice"]


def checkDeviceName(name: str | torch.device) -> torch.device:
    """The device ``name`` spells, without asking whether this machine has it.

    Parameters
    ----------
    name : `str` or `torch.device`
        A torch device name (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``), or a device (returned as it is).

    Returns
    -------
    device : `torch.device`
        The device named.

    Raises
    ------
    ValueError
        If torch does not know the name (``""``, ``"gpu"``, ``"cuda:x"``), saying which names it takes.

    Examples
    --------
    >>> checkDeviceName("cuda:1")
    device(type='cuda', index=1)
    >>> checkDeviceName("gpu")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: device 'gpu' is not a torch device name: use auto, cpu, cuda or cuda:N (Expected one of ...)
    """
    if isinstance(name, torch.device):
        return name
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"device {name!r} is empty: use auto, cpu, cuda or cuda:N")
    try:
        return torch.device(name)
    except RuntimeError as error:  # torch says what it expected; keep its words after ours
        reason = str(error).split(" device type at start")[0]
        raise ValueError(f"device {name!r} is not a torch device name: use auto, cpu, cuda or cuda:N "
                         f"({reason})") from None


def resolveDevice(name: str | torch.device = "auto") -> torch.device:
    """``"auto"`` → CUDA when available, else CPU; otherwise the named device, checked to exist.

    Parameters
    ----------
    name : `str` or `torch.device`, optional
        ``"auto"``, or a torch device name or device (:func:`checkDeviceName`).

    Returns
    -------
    device : `torch.device`
        A device this machine has.

    Raises
    ------
    ValueError
        If torch does not know the name, or this machine lacks the device (no CUDA, fewer GPUs than
        the index, no MPS).

    Examples
    --------
    >>> resolveDevice("cpu")
    device(type='cpu')
    """
    if isinstance(name, str) and name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = checkDeviceName(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(name)!r} asked for but CUDA is not available here; use --device cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(name)!r} asked for but this machine has {torch.cuda.device_count()} "
                             "CUDA device(s)")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(f"device {str(name)!r} asked for but MPS is not available here; use --device cpu or auto")
    return device
