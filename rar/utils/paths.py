"""Paths read from files (benchmark manifests, model folders) stay inside the folder they describe.

A manifest entry ``"lq": "LQ/../../victim.png"`` or a ``model_index.json`` subfolder ``"/etc"``
would otherwise make a loader read, or an evaluation write, outside the folder the user pointed
at. :func:`confined` is the one check every such reader calls.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath, PureWindowsPath


class PathEscapeError(ValueError):
    """A path read from a file points outside the folder it must stay in."""


def confined(root: str | Path, relative: str, source: str | Path, what: str = "path") -> Path:
    """``root / relative``, refusing anything that leaves ``root``.

    Args:
        root: the folder the path must stay in.
        relative: the path as written in the file (POSIX separators).
        source: the file it was read from (named in the error).
        what: what the path is (``"lq"``, ``"component 'uir'"``), named in the error.

    Raises:
        PathEscapeError: ``relative`` is empty, absolute, has a drive, contains ``..``, or
            is ``.`` alone. Symbolic links inside ``root`` are the folder owner's choice and are
            followed (a benchmark may link its images from shared storage).
    """
    if not isinstance(relative, str) or not relative.strip():
        raise PathEscapeError(f"{source}: {what} must be a non-empty relative path inside {root}, got {relative!r}")
    posix, windows = PurePosixPath(relative), PureWindowsPath(relative)
    if not posix.parts or posix.parts == (".",):
        raise PathEscapeError(f"{source}: {what} {relative!r} names {root} itself; expected a path inside it")
    if posix.is_absolute() or windows.is_absolute() or windows.drive or ".." in posix.parts or ".." in windows.parts:
        raise PathEscapeError(
            f"{source}: {what} {relative!r} leaves {root}; expected a relative path inside it without '..'"
        )
    return Path(root) / posix


def pretrained_source(name: str, what: str) -> str:
    """``name`` if it is an existing folder or could be a Hugging Face hub id (``org/name``).

    A missing folder given as a path (``runs/tiny/pretrained/sd3_text``, ``./x``, ``/x``) is reported
    as a missing folder instead of the hub's "Repo id must be in the form" error.

    Raises:
        FileNotFoundError: ``name`` looks like a path and no such folder exists.
    """
    if Path(name).is_dir():
        return name
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name or Path(name).exists():
        raise FileNotFoundError(
            f"{what}={name!r}: no such folder (nor a hub id 'org/name'); the tiny experiment's stand-ins are "
            "written by `python scripts/make_tiny_models.py runs/tiny/pretrained` (tiny_dir)"
        )
    return name
