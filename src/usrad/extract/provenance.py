"""Provenance of a feature table: the PyRadiomics parameters and the versions of what extracted it.

:func:`feature_table_metadata` is the ``usrad`` metadata written with every feature table: :func:`provenance`
plus the content SHA-256 of every row (:func:`usrad.extract.content_sha256`).
"""
from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

from .. import __version__
from ..errors import Problem, UsradError
from .extractor import import_radiomics
from .regions import RegionSpec


def provenance(params_path) -> dict:
    """The ``usrad`` metadata of a feature table extracted with ``params_path`` (feature counts added on write)."""
    import pyarrow
    import pywt
    import SimpleITK as sitk

    params_path = Path(params_path)
    try:
        text = params_path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsradError("Cannot read the PyRadiomics parameter file",
                         [Problem(f"cannot read it ({exc.strerror or exc})", file=str(params_path))]) from None
    radiomics = import_radiomics()
    return {
        "params_text": text,
        "params_sha256": hashlib.sha256(text.encode("utf-8")).hexdigest(),
        "versions": {
            "pyradiomics": str(radiomics.__version__).lstrip("v"),
            "SimpleITK": sitk.__version__,
            "numpy": np.__version__,
            "PyWavelets": pywt.__version__,
            "pyarrow": pyarrow.__version__,
            "usrad": __version__,
            "python": ".".join(map(str, sys.version_info[:3])),
        },
    }


def feature_table_metadata(params_path, content: dict | None = None, regions: dict | None = None) -> dict:
    """The ``usrad`` metadata of a feature table: :func:`provenance` plus, when given, the content SHA-256 of
    every row (``content_sha256``: sorted ``[patient_id, image_id, reader, sha]``; see :func:`usrad.extract.content_sha256`)
    and, when ``extraction.regions`` has rings, its settings (``regions``, :meth:`RegionSpec.settings`; absent
    otherwise, so a table without regions keeps its bytes)."""
    meta = provenance(params_path)
    spec = RegionSpec.from_config(regions)
    if spec.on:
        meta["regions"] = spec.settings()
    if content is not None:
        meta["content_sha256"] = sorted([*k, v] for k, v in content.items())
    return meta


__all__ = ["provenance", "feature_table_metadata"]
