"""Mini kernel of upstream ReactOS amd64 (NT 5.2-style ABI): the 5.2 loader block without a version header."""

from __future__ import annotations

from .base import MiniKernel


class ReactosKernel(MiniKernel):
    """NT 5.2: the loader block begins with its list heads; MachineType = MACHINE_TYPE_ISA."""

    os_version = (5, 2)

    def _init_data(self) -> None:
        super()._init_data()
        # HAL_DISPATCH_TABLE_VERSION 3 and HAL_PRIVATE_DISPATCH_VERSION 2 in ReactOS's NDK/halfuncs.
        if "HalDispatchTable" in self.data:
            self.mem.vput(self.data["HalDispatchTable"], 4, 3)
        if "HalPrivateDispatchTable" in self.data:
            self.mem.vput(self.data["HalPrivateDispatchTable"], 4, 2)
