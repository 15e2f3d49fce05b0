"""The positions of a net's Caffe data layers (Data, ImageData, HDF5Data), for snapshots.

Each such layer has ``state_dict_data()`` — where its next batch starts and its generator's
state — and ``load_state_dict_data``; the solver keeps them, by layer name, in its
``.solverstate.pt`` so that a resumed run reads exactly the batches the uninterrupted run would
(``reproduce.net.layers.prefetch``).
"""
from __future__ import annotations

from typing import Any


def data_layer_states(net) -> dict[str, Any]:
    """``{layer name: state}`` for every layer of ``net`` that reads data by itself."""
    layers = getattr(net, "layer_dict", {})
    return {name: layer.state_dict_data() for name, layer in layers.items()
            if hasattr(layer, "state_dict_data")}


def load_data_layer_states(net, states: dict[str, Any] | None) -> None:
    """Put back what ``data_layer_states`` returned (a snapshot without them changes nothing)."""
    layers = getattr(net, "layer_dict", {})
    for name, state in (states or {}).items():
        if name in layers and hasattr(layers[name], "load_state_dict_data"):
            layers[name].load_state_dict_data(state)
