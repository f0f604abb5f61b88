"""The model folder: ``model_index.json`` + one subfolder per component + ``rar_config.json``.

``model_index.json`` names every component by the import path of its class (diffusers style)::

    {"_class_name": "rar.pipeline.RARPipeline", "_rar_version": "0.1.0",
     "autoencoder": ["rar.uir.autoencoders.SpaceToDepthAutoencoder", "autoencoder"],
     "uir": ["rar.uir.backbones.SD3UIR", "uir"], "lqa": ["rar.lqa.model.DepictQA", "lqa"],
     "text_adapter": ["rar.lqa.text_adapter.TextAdapter", "text_adapter"],
     "conditioner": null}

A null entry is a component the folder does not hold (the SD3.5 text encoders are only needed by
the naive pipeline). Component (de)serialisation: :mod:`rar.pipeline.components`.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import rar
from rar.pipeline.components import load_component, save_component
from rar.pipeline.config import LoopConfig

INDEX_NAME = "model_index.json"
LOOP_CONFIG_NAME = "rar_config.json"
PIPELINE_CLASS = "rar.pipeline.RARPipeline"
REQUIRED = ("autoencoder", "uir", "lqa", "text_adapter")
OPTIONAL = ("conditioner",)


@dataclass
class ModelFolder:
    """What a model folder holds once loaded.

    Attributes:
        components: name → built module for every non-null entry of ``model_index.json``.
        config: the loop settings of ``rar_config.json``.
    """

    components: dict[str, nn.Module]
    config: LoopConfig


def write_model_folder(
    path: str | Path, components: dict[str, nn.Module | None], config: LoopConfig, overwrite: bool = False,
    source: dict | None = None, **options,
) -> Path:
    """Write ``components`` (``None`` entries recorded as absent) and ``config`` to ``path``.

    ``source`` (e.g. the training run it came from) is recorded as ``_source`` in the index;
    ``options`` go to the component writers (e.g. ``lora="merged"`` for the LQA). The folder is
    written next to its final place and moved there at the end, so a failed save leaves nothing
    half-written; an existing folder is replaced only with ``overwrite``.
    """
    path = Path(path)
    missing = [name for name in REQUIRED if components.get(name) is None]
    if missing:
        raise ValueError(f"a model folder needs components {list(REQUIRED)}; missing {missing}")
    unknown = sorted(set(components) - set(REQUIRED) - set(OPTIONAL))
    if unknown:
        raise ValueError(f"unknown components {unknown}; a model folder holds {list(REQUIRED + OPTIONAL)}")
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    tmp = path.with_name(path.name + ".partial")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    index: dict[str, object] = {"_class_name": PIPELINE_CLASS, "_rar_version": rar.__version__}
    if source is not None:
        index["_source"] = source
    for name in REQUIRED + OPTIONAL:
        module = components.get(name)
        index[name] = None if module is None else [save_component(module, tmp / name, **options), name]
    (tmp / INDEX_NAME).write_text(json.dumps(index, indent=2) + "\n")
    config.save(tmp / LOOP_CONFIG_NAME)
    if path.exists():
        shutil.rmtree(path)
    tmp.rename(path)
    return path


def read_model_folder(
    path: str | Path, dtype: torch.dtype | None = None, skip: tuple[str, ...] = ()
) -> ModelFolder:
    """Build every component listed in ``path/model_index.json`` except those in ``skip``."""
    path = Path(path)
    index_path = path / INDEX_NAME
    if not index_path.is_file():
        raise FileNotFoundError(
            f"{path} is not a RAR model folder (no {INDEX_NAME}); write one with scripts/export_pipeline.py "
            "or RARPipeline.save_pretrained"
        )
    index = json.loads(index_path.read_text())
    missing = [name for name in REQUIRED if not index.get(name)]
    if missing:
        raise ValueError(f"{index_path} lacks required components {missing}")
    components = {}
    for name in REQUIRED + OPTIONAL:
        entry = index.get(name)
        if entry is None or name in skip:
            continue
        class_path, subfolder = entry
        components[name] = load_component(class_path, path / subfolder, dtype)
    return ModelFolder(components, LoopConfig.load(path / LOOP_CONFIG_NAME))
