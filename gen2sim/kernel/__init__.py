"""Mini kernels, one per target description (``specs/targets/<name>.toml``)."""

from __future__ import annotations

from .base import MiniKernel
from .reactos import ReactosKernel
from .win7 import Win7Kernel

KERNELS = {"reactos-amd64": ReactosKernel, "win7sp1-amd64": Win7Kernel}


def kernel_class(target_name: str) -> type[MiniKernel]:
    """The mini-kernel class of a target (a generic 5.2-style kernel for targets without their own)."""
    return KERNELS.get(target_name, MiniKernel)
