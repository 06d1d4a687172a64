"""Mini kernel of Windows 7 SP1 x64 (NT 6.1): loader block 6.1 with its Size/Extension, dispatch-table versions."""

from __future__ import annotations

from .base import MiniKernel


class Win7Kernel(MiniKernel):
    """NT 6.1: ``LOADER_PARAMETER_BLOCK`` starts with OsMajorVersion 6, OsMinorVersion 1, Size 0xF0."""

    os_version = (6, 1)

    def _init_data(self) -> None:
        super()._init_data()
        # HAL_DISPATCH_TABLE_VERSION 4 and HAL_PRIVATE_DISPATCH_VERSION 13 on 6.1 (first field, a ULONG).
        if "HalDispatchTable" in self.data:
            self.mem.vput(self.data["HalDispatchTable"], 4, 4)
        if "HalPrivateDispatchTable" in self.data:
            self.mem.vput(self.data["HalPrivateDispatchTable"], 4, 13)
