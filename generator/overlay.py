"""A patched tree without copying the tree: the variant's HAL folder inside symbolic links to everything else.

Building the gen2 variant of an upstream ReactOS HAL needs the whole tree (headers, libraries, ``hal.spec``,
the kernel's ``.spec``) with only ``hal/halx86`` replaced by the generated one. A full checkout is about 470 MB,
so the tree is not copied: every top-level entry is a symbolic link to the original, except the folders on the
way to the HAL folder, which are real folders of links, and the HAL folder itself, which is a copy of the variant.
The unit readers then read the patched tree exactly as they read the original.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path


def overlay_tree(top: Path, hal_rel: str, variant: Path, dest: Path) -> Path:
    """Make ``dest`` the tree ``top`` with its folder ``hal_rel`` (e.g. ``hal/halx86``) replaced by a copy of
    ``variant``; returns ``dest``. Built in a temporary folder beside ``dest`` and renamed into place, so a
    failure leaves no half-made tree; an earlier ``dest`` is replaced."""
    top, variant, dest = Path(top).resolve(), Path(variant).resolve(), Path(dest)
    parts = Path(hal_rel).parts
    if not parts or not (top / hal_rel).is_dir():
        raise FileNotFoundError(f"{top / hal_rel}: no such folder to replace")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    try:
        here, original = tmp, top
        for depth, part in enumerate(parts):
            for entry in sorted(os.listdir(original)):
                if entry != part:
                    os.symlink(original / entry, here / entry)
            here, original = here / part, original / part
            if depth < len(parts) - 1:
                here.mkdir()
        shutil.copytree(variant, here, symlinks=False)
        replace_folder(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def replace_folder(new: Path, dest: Path) -> None:
    """Put the finished folder ``new`` (a sibling of ``dest``) in ``dest``'s place with renames only, so
    ``dest`` is never seen half-written; an earlier ``dest`` is moved aside first and removed after."""
    old = None
    if dest.exists() or dest.is_symlink():
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.old-", dir=dest.parent))
        os.rmdir(old)
        os.rename(dest, old)
    os.rename(new, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
