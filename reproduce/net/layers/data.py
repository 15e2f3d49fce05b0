"""Data (Caffe's ``DataLayer``): batches of ``Datum`` records from an LMDB or LevelDB database.

As Caffe (``data_layer.cpp``): ``data_param`` gives ``source``, ``backend`` (LEVELDB by default,
or LMDB) and ``batch_size``; records are read in key order, wrapping to the first after the
last; each item is a ``Datum`` (raw bytes, ``float_data`` or an encoded image —
``reproduce.caffe.datum``) put through ``transform_param`` (``DataTransformer``); the top
shape follows the first record of each batch; the optional second top holds the labels
(``batch_size``). Read ahead by ``data_param.prefetch`` batches (``PrefetchingDataLayer``), its
position and generator kept in solver snapshots. A relative ``source`` is taken from the
working directory, as Caffe takes it. LMDB needs the ``lmdb`` package, LevelDB ``plyvel``
(``pip install 'reproduce[data]'``).
"""
from __future__ import annotations

import numpy as np

from reproduce.caffe.datum import DataSourceError, RecordCursor, datum_array, decode_datum

from .data_transformer import DataTransformer
from .prefetch import PrefetchingDataLayer
from .registry import register


@register("Data")
class Data(PrefetchingDataLayer):
    """Caffe's Data layer (see the module docstring)."""

    export_refusal = "a Data source; export the net with Input layers in its place"

    def __init__(self, layer_param, bottom_shapes, generator=None):
        super().__init__(layer_param, bottom_shapes, generator)
        p = layer_param.data_param
        self.batch_size = int(p.batch_size)
        if self.batch_size <= 0:
            raise self.error("data_param.batch_size must be positive")
        self.prefetch_count = max(1, int(p.prefetch))
        try:
            self.cursor = RecordCursor(p.source, p.backend, self.layer_name)
            self.transformer = DataTransformer(layer_param.transform_param, self.phase,
                                               self.error, "transform_param")
            first = self._item(*self.cursor.next())[0]
        except DataSourceError as err:
            raise self.error(str(err)) from None
        self.cursor.rewind()
        self.item_shape = self.transformer.shape(first.shape)
        self._begin()

    def start_state(self):
        return {"position": 0}

    def _item(self, key: bytes, value: bytes):
        where = f"{self.cursor.source} record {key!r}"
        datum = decode_datum(value, where)
        t = self.transformer
        return datum_array(datum, where, t.force_color, t.force_gray), datum.label

    def top_shapes(self, bottom_shapes):
        shapes = [(self.batch_size, *self.item_shape)]
        return shapes + [(self.batch_size,)] if len(self.layer_param.top) > 1 else shapes

    def load_batch(self, state, rng):
        if self.cursor.position != state["position"]:
            self.cursor.seek(state["position"])
        data, labels = None, np.zeros(self.batch_size, np.float32)
        for i in range(self.batch_size):
            try:
                values, label = self._item(*self.cursor.next())
            except DataSourceError as err:
                raise self.error(str(err)) from None
            item = self.transformer(values, rng)
            if data is None:   # the first record of the batch sets its shape
                data = np.empty((self.batch_size, *item.shape), np.float32)
            elif item.shape != data.shape[1:]:
                raise self.error(f"record {i} of the batch has shape {item.shape}, the first "
                                 f"{data.shape[1:]}")
            data[i] = item
            labels[i] = label
        state["position"] = self.cursor.position
        return (data, labels) if len(self.layer_param.top) > 1 else (data,)
