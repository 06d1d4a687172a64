"""Mini kernel of upstream ReactOS amd64 (NT 5.2-style ABI): the 5.2 loader block without a version header.

Everything else that differs from Windows 7 is data in ``specs/targets/reactos-amd64.toml``: the structure layouts,
the dispatch tables (``[kernel.hal_dispatch_table]``, version 3, with HalIoAssignDriveLetters), the boot steps'
IRQLs (``[kernel.boot]``), the PRCB feature bits and build type.
"""

from __future__ import annotations

from .base import MiniKernel


class ReactosKernel(MiniKernel):
    """NT 5.2: the loader block begins with its list heads; MachineType = MACHINE_TYPE_ISA."""

    os_version = (5, 2)
