"""Which torch device model work runs on: ``auto`` (a CUDA GPU when there is one, else the CPU),
``cpu``, or ``cuda`` / ``cuda:N``. Shared by generation, training and the server."""

import torch

from core.errors import FlowVQError

__all__ = ["DEVICES", "DeviceError", "resolve_device"]

DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")


class DeviceError(FlowVQError):
    """An unknown device name, or CUDA asked for on a machine without it."""
    code = "device"


def resolve_device(device: str) -> torch.device:
    """"auto" -> CUDA when available, else the CPU; "cpu"; "cuda" (or "cuda:N") when available."""
    name = device.strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.split(":")[0] not in DEVICES:
        raise DeviceError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"device {device!r} asked for, but CUDA is not available here; use cpu or auto")
    return torch.device(name)
