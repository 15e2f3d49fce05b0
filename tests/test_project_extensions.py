"""The project's extension fields of the Caffe schema: read, never written for Caffe.

``PoolingParameter.dilation`` and ``rarefaction`` (fields 50000, 50001,
``reproduce.caffe.proto_tables``) are ours — the poolings of a rarefied net (CVPR 2015 Sec. 3.2). It parses (text and binary), and the
prototxt and caffemodel writers refuse a message that sets it, naming the layer.
"""
from __future__ import annotations

import pytest

from reproduce.caffe import NotCaffeError, decode, emit, encode, parse, wire
from reproduce.caffe.schema import MESSAGES, project_extensions

NET = """
name: "n"
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv" convolution_param { num_output: 1 kernel_size: 3 dilation: 2 } }
layer { name: "pool" type: "Pooling" bottom: "conv" top: "pool" pooling_param { kernel_size: 2 stride: 1 dilation: 2 } }
"""


def test_extension_fields_lie_outside_caffes_numbers():
    extensions = [(m.name, f.name, f.number) for m in MESSAGES.values() for f in m.fields.values()
                  if f.extension]
    assert extensions == [("PoolingParameter", "dilation", 50000), ("PoolingParameter", "rarefaction", 50001)]
    assert max(f.number for m in MESSAGES.values() for f in m.fields.values() if not f.extension) < 50000


def test_parsed_and_listed_with_their_layer():
    net = parse(NET)
    assert net.layer[1].pooling_param.dilation == 2
    assert project_extensions(net) == [("layer 'pool' (Pooling)", "pooling_param.dilation")]
    # a convolution's dilation is Caffe's own
    assert project_extensions(parse(NET.split("layer {")[0] + "layer {" + NET.split("layer {")[1])) == []


@pytest.mark.parametrize("write, what", [(emit, "a prototxt"), (encode, "a binary protobuf")])
def test_writers_refuse_them(write, what):
    with pytest.raises(NotCaffeError, match=rf"^layer 'pool' \(Pooling\): pooling_param.dilation is this "
                                            rf"project's extension.*so {what}"):
        write(parse(NET))


def test_binary_field_50000_decodes_as_the_extension():
    net = parse(NET)
    pool = net.layer[1].pooling_param
    pool.clear("dilation")
    body = encode(pool) + wire.varint_bytes(50000 << 3) + wire.varint_bytes(3)
    assert decode(body, "PoolingParameter").dilation == 3
