"""What a net's inputs receive on each forward pass during training or testing.

A net built by ``reproduce.net.Net`` has two kinds of inputs:

* the tops of ``Input`` layers — as in Caffe, their data stay put until replaced: arrays
  given with ``feed`` (a dict) are held and reused by every forward until fed again, so with
  ``iter_size: 2`` one feed serves both passes, exactly as pycaffe's ``net.blobs[…].data[…] =``
  before ``solver.step``; a callable ``feed`` is called on every forward instead;
* the tops of bottomless ``Python`` data layers (``voc_layers.SBDDSegDataLayer`` …) — each
  forward draws the next sample from a ``reproduce.data`` source built from the layer's
  ``python_param``, in the reference order (one sample per forward, as the reference
  layer's ``reshape``/``forward`` loads one). A top given in a feed overrides its layer.

``root_overrides`` relocates the data sets: a path replaces every data layer's main directory
parameter (``sbdd_dir``, ``voc_dir``, …); a mapping ``{parameter: path}`` (e.g.
``{"sbdd_dir": …, "voc_dir": …}``) replaces the parameters it names in every data layer.
Relative directories are taken relative to ``base_dir`` (the solver file's directory).
"""
from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping, Union

from reproduce.net import LayerError, NetError

from .errors import SolverConfigError

Feed = Union[Mapping[str, Any], Callable[[], Mapping[str, Any]], None]


class InputFeeder:
    """The inputs of one net, per forward (see the module docstring)."""

    def __init__(self, net, base_dir: str | os.PathLike | None = None, root_overrides=None):
        self.net_name = net.name
        self.inputs = list(net.inputs)
        self.held: dict[str, Any] = {}
        self.sources: "OrderedDict[str, Any]" = OrderedDict()   # layer name → DataSource
        self.source_tops: dict[str, list[str]] = {}              # layer name → its tops
        self.source_errors: dict[str, Exception] = {}            # layer name → why it has none
        self.fed_samples: dict[str, str] = {}                    # layer name → id last fed
        for name, layer in getattr(net, "layer_dict", {}).items():
            if layer.layer_type != "Python" or not set(layer.layer_param.top) <= set(self.inputs):
                continue
            self.source_tops[name] = list(layer.layer_param.top)
            try:
                self.sources[name] = _make_source(name, layer.layer_param, base_dir, root_overrides)
            except (ImportError, LookupError, ValueError, OSError) as err:
                # the caller may still feed these tops; say why only if it does not
                self.source_errors[name] = err

    # -- feeding ----------------------------------------------------------------------
    def hold(self, feed: Mapping[str, Any]) -> None:
        """Keep ``feed``'s arrays as the data of those inputs until fed again."""
        unknown = [name for name in feed if name not in self.inputs]
        if unknown:
            raise SolverConfigError(f"net {self.net_name!r} has no inputs {unknown} "
                                    f"(its inputs: {self.inputs})")
        self.held.update(feed)

    def next(self, feed: Feed = None) -> dict[str, Any]:
        """The inputs of the next forward pass."""
        given: dict[str, Any] = dict(self.held)
        self.fed_samples = {}
        if callable(feed):
            produced = feed()
            unknown = [name for name in produced if name not in self.inputs]
            if unknown:
                raise SolverConfigError(f"the feed returned {unknown}, which are not inputs of "
                                        f"net {self.net_name!r} (its inputs: {self.inputs})")
            given.update(produced)
        elif feed is not None:
            self.hold(feed)
            given.update(feed)
        for layer, tops in self.source_tops.items():
            if all(top in given for top in tops):
                continue
            source = self.sources.get(layer)
            if source is None:
                raise SolverConfigError(f"net {self.net_name!r}: no data for the tops {tops} of "
                                        f"Python layer {layer!r}: {self.source_errors[layer]}")
            self.fed_samples[layer] = source.next_id
            arrays = source.next()
            if len(arrays) != len(tops):
                raise SolverConfigError(f"layer {layer!r} has tops {tops} but its data source "
                                        f"gives {len(arrays)} arrays ({list(source.tops)})")
            for top, array in zip(tops, arrays):
                given.setdefault(top, array)
        missing = [name for name in self.inputs if name not in given]
        if missing:
            raise SolverConfigError(f"net {self.net_name!r}: inputs {missing} were never fed; "
                                    f"pass feed={{name: array}} (or a callable) to step()")
        return {name: given[name] for name in self.inputs}

    def forward(self, net, feed: Feed = None) -> dict[str, Any]:
        """``net(**self.next(feed))``; a layer's refusal of the data names the samples fed."""
        inputs = self.next(feed)
        try:
            return net(**inputs)
        except (LayerError, NetError) as err:
            if not self.fed_samples:
                raise
            samples = ", ".join(f"sample {sample!r} of data layer {layer!r}"
                                for layer, sample in self.fed_samples.items())
            raise type(err)(f"{err} (net {self.net_name!r} was running on {samples})") from None

    # -- state ------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {layer: source.state_dict() for layer, source in self.sources.items()}

    def load_state_dict(self, state: Mapping[str, dict]) -> None:
        for layer, source in self.sources.items():
            if layer in state:
                source.load_state_dict(state[layer])


def _make_source(name: str, layer_param, base_dir, root_overrides):
    from reproduce.data.registry import make_data_source

    from reproduce.data.torch_loader import PrefetchingSource

    python_param = layer_param.python_param
    source = make_data_source(python_param.module, python_param.layer, python_param.param_str,
                              root_override=root_overrides,
                              base_dir=Path(base_dir) if base_dir else None, name=name)
    # the next samples load in a background thread while the net computes; the order (drawn
    # here, in the reference sequence) and the saved sampler state are those of the source
    return PrefetchingSource(source, depth=2)
