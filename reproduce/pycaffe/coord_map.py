"""``caffe.coord_map``: ``crop(top_from, top_to)`` — a Crop layer whose offsets come from
coordinate mapping, as pycaffe's ``coord_map.crop`` (used by the release's ``net.py``:
``n.score = crop(n.upscore, n.data)``).

The map from ``top_from`` to ``top_to`` is derived by the project's
``reproduce.net.coord_map`` on the layers that compute them (exact fractions; a map that is
not an integer translation is a ``CoordMapError`` naming the maps); the returned top is
``L.Crop(top_from, top_to, crop_param=dict(axis=…, offset=[…]))``. ``coord_map_from_to`` and
``CoordMapError`` are re-exported.
"""
from __future__ import annotations

from reproduce.net.coord_map import CoordMap, CoordMapError, coord_map_from_to, crop_geometry
from reproduce.net.spec import Top, layers as L
from reproduce.net.spec import to_proto as _to_proto

__all__ = ["CoordMap", "CoordMapError", "coord_map_from_to", "crop"]


def crop(top_from: Top, top_to: Top) -> Top:
    """A Crop of ``top_from`` to ``top_to`` with the axis and offsets their geometry gives."""
    if not isinstance(top_from, Top) or not isinstance(top_to, Top):
        raise TypeError("crop(top_from, top_to) takes two net_spec tops")
    probe = L.Crop(top_from, top_to)
    net = _to_proto(probe)
    geometry = crop_geometry(net, net.layer[-1].name)
    return L.Crop(top_from, top_to, crop_param=dict(axis=geometry.axis,
                                                    offset=list(geometry.offset)))
