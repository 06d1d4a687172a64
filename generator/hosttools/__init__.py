"""ReactOS's build-time host tools, rewritten in Python.

An upstream ReactOS tree does not compile as it is: a few headers are made at build time by host tools whose C
sources live in the tree (``sdk/tools``). Their behaviour is our specification; the code here is our own:

- ``hpp``: the header preprocessor that makes ``wdm.h``, ``ntddk.h``, ``ntifs.h``, ``devioctl.h``, ``ntdef.h``
  and ``winnt.h`` from ``sdk/include/xdk/*.template.h``;
- ``mc``: the message compiler, for ``bugcodes.h`` from ``sdk/include/reactos/mc/bugcodes.mc``;
- ``geninc``: ``ksamd64.inc`` from the ``.asmdef`` section of the compiled ``sdk/include/asm/genincdata.c``;
- ``spec``: ``spec2def``, the ``.spec`` export list reader and ``.def`` writer;
- ``headers``: all generated headers of a tree into a content-addressed cache folder.
"""

from __future__ import annotations


class HostToolError(Exception):
    """A host tool's input is bad or a tool failed; the message names the file (and line) and what was expected."""
