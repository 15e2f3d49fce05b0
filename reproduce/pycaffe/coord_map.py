"""``caffe.coord_map``: ``coord_map_from_to(top_from, top_to)`` and ``crop(top_from, top_to)``
on net_spec tops, as pycaffe's ``coord_map.py`` (the release's ``net.py`` writes
``n.score = crop(n.upscore, n.data)``).

The maps are derived by the project's ``reproduce.net.coord_map`` on the layers that compute
the two tops (exact fractions; a map that is not an integer translation is a
``CoordMapError`` naming the maps, where pycaffe fails an ``assert``):

* ``coord_map_from_to(top_from, top_to)`` → ``(axis, scale, shift)``: a coordinate ``x`` of
  ``top_from`` is ``scale·x + shift`` in ``top_to``; ``scale`` and ``shift`` are float arrays,
  one entry per spatial axis — or a single entry when every axis maps alike, as pycaffe's
  arrays are for geometry given as single numbers;
* ``crop(top_from, top_to)`` → ``L.Crop(top_from, top_to, crop_param=dict(axis=…, offset=[…]))``.
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from reproduce.net import spec as _spec
from reproduce.net.coord_map import CoordMap, CoordMapError, crop_geometry
from reproduce.net.coord_map import coord_map_from_to as _net_coord_map_from_to
from reproduce.net.spec import Top, layers as L

__all__ = ["CoordMap", "CoordMapError", "coord_map_from_to", "crop"]


def _emit(*tops: Top):
    """The NetParameter computing ``tops`` and the blob name each top gets in it."""
    for top in tops:
        if not isinstance(top, Top):
            raise TypeError(f"expected net_spec tops, got {type(top).__name__}")
    namer, emitted = _spec._Namer({}), OrderedDict()
    for top in tops:
        _spec._emit(top, namer, emitted)
    net = _spec._net(emitted.values(), {})
    return net, [emitted[top.layer].top[top.index] for top in tops]


def coord_map_from_to(top_from: Top, top_to: Top):
    """pycaffe's ``coord_map_from_to``: ``(axis, scale, shift)`` from ``top_from`` to ``top_to``."""
    net, (name_from, name_to) = _emit(top_from, top_to)
    m = _net_coord_map_from_to(net, name_from, name_to)
    scale = np.array([float(v) for v in m.scale])
    shift = np.array([float(v) for v in m.shift])
    if scale.size > 1 and (scale == scale[0]).all() and (shift == shift[0]).all():
        scale, shift = scale[:1], shift[:1]
    return m.axis, scale, shift


def crop(top_from: Top, top_to: Top) -> Top:
    """A Crop of ``top_from`` to ``top_to`` with the axis and offsets their geometry gives."""
    if not isinstance(top_from, Top) or not isinstance(top_to, Top):
        raise TypeError("crop(top_from, top_to) takes two net_spec tops")
    net = _spec.to_proto(L.Crop(top_from, top_to))
    geometry = crop_geometry(net, net.layer[-1].name)
    return L.Crop(top_from, top_to, crop_param=dict(axis=geometry.axis,
                                                    offset=list(geometry.offset)))
