"""The reference Python data layers by name → data sources that behave like them.

A prototxt's ``python_param { module: "voc_layers" layer: "SBDDSegDataLayer" param_str: … }``
names a layer of the reference release; ``make_data_source(module, layer, params)`` builds
the equivalent here. A ``DataSource`` gives, per ``next()``, one array per top with the
leading batch axis of 1 (the reference reshapes each top to ``(1, *shape)``), in the
reference sample order (``ReferenceSampler``), and its state can be saved and restored.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Callable

import numpy as np

from .augment import Augmentation
from .base import SplitDataset
from .param_str import ParamStrError, parse_param_str
from .sampler import DEFAULT_FLAVOR, ReferenceSampler


class DataSource:
    """A dataset read in the reference order, one sample (batch of 1) per ``next()``."""

    def __init__(self, dataset: SplitDataset, sampler: ReferenceSampler, name: str = "data",
                 augment: Augmentation | None = None):
        if sampler.n != len(dataset):
            raise ValueError(f"sampler over {sampler.n} samples for a dataset of {len(dataset)}")
        self.dataset = dataset
        self.sampler = sampler
        self.name = name
        self.augment = augment   # the paper's mirroring/jittering (reproduce.data.augment), or None

    @property
    def tops(self) -> tuple[str, ...]:
        """What each output is (``data``/``label``, ``data``/``sem``/``geo``, NYUD's ``tops``)."""
        return tuple(self.dataset.tops)

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def next_id(self) -> str:
        """The id of the sample the next ``next()`` returns."""
        return self.dataset.ids[self.sampler.peek()]

    def draw(self) -> tuple[int, tuple | None]:
        """The next sample's index in the reference order and its augmentation draw (or None)."""
        index = self.sampler.next()
        return index, (self.augment.draw() if self.augment is not None else None)

    def load(self, index: int, augmentation: tuple | None = None) -> tuple[np.ndarray, ...]:
        """Sample ``index`` of the split with the batch axis, regardless of the order, augmented
        as ``augmentation`` (a ``draw()``) says."""
        arrays = self.dataset[index]
        if augmentation is not None:
            arrays = self.augment.apply(arrays, augmentation)
        return tuple(array[np.newaxis, ...] for array in arrays)

    def next(self) -> tuple[np.ndarray, ...]:
        return self.load(*self.draw())

    __next__ = next

    def __iter__(self):
        return self

    def state_dict(self) -> dict:
        state = {"name": self.name, "split": self.dataset.split, "sampler": self.sampler.state_dict()}
        if self.augment is not None:
            state["augment"] = self.augment.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        if (self.augment is None) != ("augment" not in state):
            raise ValueError(f"data source {self.name!r}: the saved state was "
                             f"{'' if 'augment' in state else 'not '}augmented, this source is "
                             f"{'' if self.augment is not None else 'not '}(mirror/jitter changed?)")
        self.sampler.load_state_dict(state["sampler"])
        if self.augment is not None:
            self.augment.load_state_dict(state["augment"])

    def __repr__(self) -> str:
        return f"DataSource({self.name!r}, {self.dataset!r}, {self.sampler!r})"


# -- factories ---------------------------------------------------------------------------
def _require(params: dict, key: str, layer: str):
    if key not in params:
        raise ParamStrError(f"layer {layer!r}: param_str lacks {key!r} (has {sorted(params)})")
    return params[key]


def _directory(params: dict, key: str, layer: str, base_dir) -> Path:
    path = Path(_require(params, key, layer))
    return path if base_dir is None or path.is_absolute() else Path(base_dir) / path


def _sampler(params: dict, n: int, flavor: str) -> ReferenceSampler:
    return ReferenceSampler(n, randomize=params.get("randomize", True), seed=params.get("seed", None),
                            split=params["split"], flavor=flavor)


def _sbdd(params, layer, base_dir):
    from .voc import SBDSegmentation
    return SBDSegmentation(_directory(params, "sbdd_dir", layer, base_dir), _require(params, "split", layer),
                           mean=_require(params, "mean", layer))


def _voc(params, layer, base_dir):
    from .voc import VOCSegmentation
    return VOCSegmentation(_directory(params, "voc_dir", layer, base_dir), _require(params, "split", layer),
                           mean=_require(params, "mean", layer))


def _siftflow(params, layer, base_dir):
    from .siftflow import SIFTFlowSegmentation
    return SIFTFlowSegmentation(_directory(params, "siftflow_dir", layer, base_dir),
                                _require(params, "split", layer))


def _nyud(params, layer, base_dir):
    from .nyud import NYUDSegmentation
    return NYUDSegmentation(_directory(params, "nyud_dir", layer, base_dir), _require(params, "split", layer),
                            tops=_require(params, "tops", layer))


def _pascalcontext(params, layer, base_dir):
    from .pascalcontext import PASCALContextSegmentation
    return PASCALContextSegmentation(_directory(params, "voc_dir", layer, base_dir),
                                     _directory(params, "context_dir", layer, base_dir),
                                     _require(params, "split", layer))


def _folder(params, layer, base_dir):
    from .folder import FolderSegmentation
    return FolderSegmentation(_directory(params, "dataset_dir", layer, base_dir), _require(params, "split", layer),
                              _directory(params, "split_file", layer, base_dir), mean=_require(params, "mean", layer),
                              num_classes=int(_require(params, "num_classes", layer)),
                              ignore_label=int(params.get("ignore_label", 255)))


# (module, layer) → (factory, the parameter naming the dataset directory root_override replaces)
DATA_LAYERS: dict[tuple[str, str], tuple[Callable, str]] = {
    ("voc_layers", "SBDDSegDataLayer"): (_sbdd, "sbdd_dir"),
    ("voc_layers", "VOCSegDataLayer"): (_voc, "voc_dir"),
    ("siftflow_layers", "SIFTFlowSegDataLayer"): (_siftflow, "siftflow_dir"),
    ("nyud_layers", "NYUDSegDataLayer"): (_nyud, "nyud_dir"),
    ("pascalcontext_layers", "PASCALContextSegDataLayer"): (_pascalcontext, "voc_dir"),
    # a user's own dataset (reproduce.data.folder; --dataset DIR)
    ("folder_layers", "FolderSegDataLayer"): (_folder, "dataset_dir"),
}


class UnknownDataLayerError(ValueError):
    """A ``python_param`` module/layer pair that names no known reference data layer."""


def make_data_source(module: str, layer: str, params: dict | str, root_override=None,
                     base_dir=None, name: str | None = None,
                     sampler_flavor: str = DEFAULT_FLAVOR) -> DataSource:
    """A ``DataSource`` equivalent to the reference layer ``module.layer`` with ``params``.

    ``params`` is the parsed ``param_str`` dict (or the string itself). ``root_override``
    replaces the dataset directory: a path replaces the layer's main directory parameter
    (``sbdd_dir``, ``voc_dir``, ``siftflow_dir``, ``nyud_dir``); a mapping replaces the
    parameters it names (e.g. ``{"context_dir": …}``). Relative directories are taken
    relative to ``base_dir`` when given (Caffe resolves them against its working directory).
    ``sampler_flavor`` picks Python 2's (the reference's) or Python 3's ``randint`` stream.
    """
    label = name or f"{module}.{layer}"
    try:
        factory, main_key = DATA_LAYERS[(module, layer)]
    except KeyError:
        known = ", ".join(f"{m}.{l}" for m, l in DATA_LAYERS)
        raise UnknownDataLayerError(f"layer {label!r}: unknown Python data layer {module}.{layer} "
                                    f"(known: {known})") from None
    params = parse_param_str(params, label) if isinstance(params, str) else dict(params)
    if root_override is not None:
        if isinstance(root_override, Mapping):
            params.update({key: str(value) for key, value in root_override.items()})
        else:
            params[main_key] = str(root_override)
    dataset = factory(params, label, base_dir)
    augment = Augmentation.from_params(params, label, dataset.tops)
    return DataSource(dataset, _sampler(params, len(dataset), sampler_flavor), name=label,
                      augment=augment)
