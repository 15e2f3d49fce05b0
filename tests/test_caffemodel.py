"""Binary and HDF5 caffemodels: read as Caffe holds the blobs, written as Caffe's Net.save lays them out.

The oracle is the real Caffe: ``weights.caffemodel`` / ``.h5`` written by ``Net.save`` /
``Net.save_hdf5`` and the ``param/<layer>/<i>`` arrays Caffe held after loading them.
OpenCV's Caffe importer is an independent reader of the files we write.
"""
from __future__ import annotations

import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from conftest import VOC_NETS
from reproduce.caffe import wire
from reproduce.caffe.errors import CaffeFormatError, UpgradeError, WeightsError, WireFormatError
from reproduce.caffe.weights import read_hdf5, write_hdf5
from reproduce.caffe.schema import Message
from reproduce.caffe.weights import (blob_array, caffemodel_message, held_shape, read_caffemodel,
                                     read_weights, write_caffemodel)


def caffe_params(npz_path: Path) -> dict[str, list[np.ndarray]]:
    """``param/<layer>/<i>`` of a golden npz as ``{layer: [blob, …]}`` (blobs in index order)."""
    out: dict[str, dict[int, np.ndarray]] = {}
    with np.load(npz_path) as z:
        for key in z.files:
            if key.startswith("param/"):
                _, layer, index = key.split("/")
                out.setdefault(layer, {})[int(index)] = z[key]
    return {layer: [blobs[i] for i in range(len(blobs))] for layer, blobs in out.items()}


def assert_same_weights(actual: dict, expected: dict) -> None:
    assert set(actual) == set(expected)
    for layer, blobs in expected.items():
        assert len(actual[layer]) == len(blobs), layer
        for i, (mine, caffes) in enumerate(zip(actual[layer], blobs)):
            assert mine.dtype == np.float32, (layer, i, mine.dtype)
            assert mine.shape == caffes.shape, (layer, i, mine.shape, caffes.shape)
            assert np.array_equal(mine, caffes), (layer, i)


# --------------------------------------------------------------------------- golden reads


@pytest.mark.golden
@pytest.mark.parametrize("net", VOC_NETS)
def test_binary_caffemodel_reads_as_caffe_holds_it(golden, net):
    weights = read_weights(golden / net / "weights.caffemodel")
    assert_same_weights(weights, caffe_params(golden / net / "forward_64x80.npz"))


@pytest.mark.golden
@pytest.mark.parametrize("net", VOC_NETS)
def test_hdf5_caffemodel_reads_as_caffe_holds_it(golden, net):
    weights = read_weights(golden / net / "weights.caffemodel.h5")
    assert_same_weights(weights, caffe_params(golden / net / "forward_64x80.npz"))


@pytest.mark.golden
def test_v1_caffemodel_legacy_shapes_become_caffes_shapes(golden):
    path = golden / "vgg16-v1" / "weights.caffemodel"
    raw = read_caffemodel(path)
    assert raw.has("layers") and not raw.has("layer")
    fc6 = next(layer for layer in raw.layers if layer.name == "fc6")
    assert fc6.type == "INNER_PRODUCT"
    assert (fc6.blobs[0].num, fc6.blobs[0].channels) == (1, 1) and not fc6.blobs[0].has("shape")
    assert (fc6.blobs[1].num, fc6.blobs[1].channels, fc6.blobs[1].height) == (1, 1, 1)

    weights = read_weights(path)
    assert_same_weights(weights, caffe_params(golden / "vgg16-v1" / "forward_224x224.npz"))
    assert weights["fc6"][0].ndim == 2 and weights["fc6"][1].ndim == 1
    assert weights["conv1_1"][0].ndim == 4 and weights["conv1_1"][1].ndim == 1


@pytest.mark.golden
def test_transplanted_caffemodel_reads_as_caffe_holds_it(golden):
    weights = read_weights(golden / "vgg16-v1" / "fcn32s-transplanted.caffemodel")
    assert_same_weights(weights, caffe_params(golden / "vgg16-v1" / "fcn32s-transplanted-params.npz"))


@pytest.mark.golden
def test_read_blobs_are_writable_views_of_one_buffer(golden):
    net = read_caffemodel(golden / "voc-fcn8s" / "weights.caffemodel")
    arrays = [blob.data for layer in net.layer for blob in layer.blobs]
    bases = {id(_root(a)) for a in arrays}
    assert len(bases) == 1
    assert all(a.flags.writeable and not a.flags.owndata for a in arrays)
    assert sum(a.nbytes for a in arrays) < _root(arrays[0]).nbytes


def _root(array):
    """The object that owns the memory behind ``array`` (through views and memoryviews)."""
    while True:
        if isinstance(array, np.ndarray) and array.base is not None:
            array = array.base
        elif isinstance(array, memoryview):
            array = array.obj
        else:
            return array


# --------------------------------------------------------------------------- writing


@pytest.mark.golden
@pytest.mark.parametrize("net", VOC_NETS)
def test_written_caffemodel_has_caffes_layout(golden, net, tmp_path):
    source = golden / net / "weights.caffemodel"
    caffe_net = read_caffemodel(source)
    weights = read_weights(source)
    out = tmp_path / "out.caffemodel"
    write_caffemodel(out, weights, caffe_net)

    written = read_caffemodel(out)
    assert written.name == caffe_net.name
    assert [layer.name for layer in written.layer] == [layer.name for layer in caffe_net.layer]
    for mine, caffes in zip(written.layer, caffe_net.layer):
        assert [f.name for f, _ in mine.present_fields()] == [f.name for f, _ in caffes.present_fields()]
        assert mine == caffes, mine.name
    assert out.read_bytes() == source.read_bytes()   # same fields in the same order: same bytes
    assert_same_weights(read_weights(out), weights)


@pytest.mark.golden
def test_written_caffemodel_without_net_holds_names_and_blobs(golden, tmp_path):
    weights = read_weights(golden / "voc-fcn16s" / "weights.caffemodel")
    out = tmp_path / "bare.caffemodel"
    write_caffemodel(out, weights)
    written = read_caffemodel(out)
    assert [layer.name for layer in written.layer] == list(weights)
    for layer in written.layer:
        assert [f.name for f, _ in layer.present_fields()] == ["name", "blobs"]
        assert all(blob.has("shape") and not blob.has("num") for blob in layer.blobs)
    assert_same_weights(read_weights(out), weights)


@pytest.mark.golden
def test_v1_net_is_upgraded_when_written(golden, tmp_path):
    path = golden / "vgg16-v1" / "weights.caffemodel"
    weights = read_weights(path)
    out = tmp_path / "vgg.caffemodel"
    write_caffemodel(out, weights, read_caffemodel(path))
    written = read_caffemodel(out)
    assert not written.has("layers")
    types = {layer.name: layer.type for layer in written.layer}
    assert types["conv1_1"] == "Convolution" and types["fc6"] == "InnerProduct"
    fc6 = next(layer for layer in written.layer if layer.name == "fc6")
    assert list(fc6.blobs[0].shape.dim) == list(weights["fc6"][0].shape)
    assert_same_weights(read_weights(out), weights)


@pytest.mark.golden
@pytest.mark.parametrize("net", VOC_NETS)
def test_hdf5_round_trip_and_caffes_layout(golden, net, tmp_path):
    source = golden / net / "weights.caffemodel"
    weights = read_weights(source)
    out = tmp_path / "out.caffemodel.h5"
    write_hdf5(out, weights, read_caffemodel(source))
    assert_same_weights(read_weights(out), weights)

    with h5py.File(out, "r") as mine, h5py.File(golden / net / "weights.caffemodel.h5", "r") as caffes:
        assert list(mine) == list(caffes) == ["data"]
        assert list(mine["data"]) == list(caffes["data"])   # parameterless layers too
        for layer in caffes["data"]:
            assert list(mine["data"][layer]) == list(caffes["data"][layer])
            for key, theirs in caffes["data"][layer].items():
                ours = mine["data"][layer][key]
                assert (ours.shape, ours.dtype, ours.chunks, ours.compression) == \
                       (theirs.shape, theirs.dtype, theirs.chunks, theirs.compression)


@pytest.mark.golden
def test_hdf5_without_net_and_binary_from_hdf5(golden, tmp_path):
    weights = read_weights(golden / "voc-fcn8s" / "weights.caffemodel.h5")
    h5 = tmp_path / "w.h5"
    write_hdf5(h5, weights)
    with h5py.File(h5, "r") as f:
        assert sorted(f["data"]) == sorted(weights)
    binary = tmp_path / "w.caffemodel"
    write_caffemodel(binary, read_weights(h5))
    assert_same_weights(read_weights(binary), caffe_params(golden / "voc-fcn8s" / "forward_64x80.npz"))


@pytest.mark.golden
@pytest.mark.parametrize("net", VOC_NETS)
def test_opencv_runs_the_caffemodel_we_wrote(golden, net, tmp_path):
    cv2 = pytest.importorskip("cv2")
    if not hasattr(cv2.dnn, "readNetFromCaffe"):
        pytest.skip("this OpenCV has no Caffe importer (OpenCV 5 dropped it)")
    out = tmp_path / "ours.caffemodel"
    write_caffemodel(out, read_weights(golden / net / "weights.caffemodel"))
    with np.load(golden / net / "forward_64x80.npz") as z:
        data, expected = z["blob/data"], z["blob/score"]
    assert data.shape == (1, 3, 64, 80)
    reader = cv2.dnn.readNetFromCaffe(str(golden / net / "deploy.prototxt"), str(out))
    reader.setInput(data)
    score = reader.forward("score")
    assert score.shape == expected.shape
    assert np.abs(score - expected).max() <= 1e-4 * np.abs(expected).max()


def test_write_is_atomic_and_leaves_no_temporary(tmp_path):
    out = tmp_path / "w.caffemodel"
    write_caffemodel(out, {"a": [np.ones((2, 3), np.float32)]})
    before = out.read_bytes()

    def fail(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_caffemodel(out, {"a": [np.zeros((4, 5), np.float32)]}, progress=fail)
    with pytest.raises(KeyboardInterrupt):
        write_hdf5(out, {"a": [np.zeros((4, 5), np.float32)]}, progress=fail)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.caffemodel"]


def test_progress_reports_every_byte(tmp_path):
    weights = {"conv": [np.arange(60, dtype=np.float32).reshape(3, 4, 5), np.ones(3, np.float32)],
               "fc": [np.full((7, 2), 0.5, np.float32)]}
    for writer, name in ((write_caffemodel, "w.caffemodel"), (write_hdf5, "w.h5")):
        seen: list[tuple[int, int]] = []
        path = tmp_path / name
        writer(path, weights, progress=lambda done, total: seen.append((done, total)))
        assert seen and seen == sorted(seen) and seen[-1][0] == seen[-1][1]
        seen.clear()
        assert_same_weights(read_weights(path, progress=lambda d, t: seen.append((d, t))), weights)
        assert seen and seen[-1][0] == seen[-1][1]
    assert seen[-1][1] == sum(a.nbytes for blobs in weights.values() for a in blobs)


def test_written_blob_shapes_scalars_and_dtypes(tmp_path):
    weights = {"s": [np.float64(2.5), np.zeros((0, 3)), np.arange(6, dtype=np.int64).reshape(2, 3)],
               "f64": [np.linspace(0, 1, 7)]}
    out = tmp_path / "w.caffemodel"
    write_caffemodel(out, weights)
    got = read_weights(out)
    assert got["s"][0].shape == () and got["s"][0] == np.float32(2.5)
    assert got["s"][1].shape == (0, 3)
    assert np.array_equal(got["s"][2], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert np.array_equal(got["f64"][0], np.linspace(0, 1, 7).astype(np.float32))
    scalar_blob = read_caffemodel(out).layer[0].blobs[0]
    assert not scalar_blob.has("shape")   # Blob::ToProto adds no dims for a 0-axis blob


def test_writer_rejects_what_caffe_could_not_hold(tmp_path):
    with pytest.raises(ValueError, match="not have"):
        write_caffemodel(tmp_path / "x.caffemodel", {"ghost": [np.ones(2)]},
                         Message("NetParameter", layer=[Message("LayerParameter", name="real")]))
    with pytest.raises(TypeError):
        write_caffemodel(tmp_path / "x.caffemodel", {"a": [np.array(["text"])]})
    with pytest.raises(TypeError, match="list of blobs"):
        write_caffemodel(tmp_path / "x.caffemodel", {"a": np.ones(3)})
    with pytest.raises(ValueError, match="HDF5 group"):
        write_hdf5(tmp_path / "x.h5", {"a/b": [np.ones(2)]})
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- blob semantics


def _blob(**fields) -> Message:
    return Message("BlobProto", **fields)


def test_legacy_shapes_as_caffe_layers_hold_them():
    assert held_shape((1, 1, 10, 32), "INNER_PRODUCT", 0) == (10, 32)
    assert held_shape((1, 1, 10, 32), "InnerProduct", 0) == (10, 32)
    assert held_shape((1, 1, 1, 10), "INNER_PRODUCT", 1) == (10,)
    assert held_shape((1, 1, 1, 4), "CONVOLUTION", 1) == (4,)
    assert held_shape((1, 1, 3, 3), "Convolution", 0) == (1, 1, 3, 3)   # one output, one input
    assert held_shape((1, 1, 1, 1), "Deconvolution", 0) == (1, 1, 1, 1)
    assert held_shape((2, 1, 10, 32), "INNER_PRODUCT", 0) == (2, 1, 10, 32)  # Caffe would refuse it
    assert held_shape((1, 1, 1, 5), "PReLU", 0) == (1, 1, 1, 5)


def test_legacy_fields_win_over_shape_as_in_blob_from_proto():
    blob = _blob(num=1, channels=1, height=2, width=3, data=np.arange(6, dtype=np.float32))
    blob.mutable("shape").dim = [6]
    assert blob_array(blob, "ip", "InnerProduct", 0).shape == (2, 3)
    assert blob_array(blob, "x", "Python", 0).shape == (1, 1, 2, 3)
    only_width = _blob(width=4, data=np.ones(4, np.float32))   # unset legacy fields read as 0
    with pytest.raises(WeightsError, match="holds 0 values"):
        blob_array(only_width, "b", "Convolution", 1)


def test_double_data_wins_and_is_rounded_to_float32(tmp_path):
    values = np.array([0.1, 1 / 3, 1e-40, 3.4e38, -2.0], dtype=np.float64)
    blob = _blob(double_data=values, data=np.zeros(5, np.float32))
    blob.mutable("shape").dim = [5]
    net = Message("NetParameter", layer=[Message("LayerParameter", name="d", blobs=[blob])])
    path = tmp_path / "d.caffemodel"
    path.write_bytes(wire.encode(net))
    got = read_weights(path)["d"][0]
    assert got.dtype == np.float32
    assert np.array_equal(got, values.astype(np.float32))


def test_blob_with_wrong_count_names_layer_and_offset(tmp_path):
    good = caffemodel_message({"a": [np.ones(3, np.float32)], "conv": [np.ones((2, 2), np.float32)]})
    good.layer[1].blobs[0].mutable("shape").dim = [2, 3]
    path = tmp_path / "bad.caffemodel"
    data = wire.encode(good)
    path.write_bytes(data)
    with pytest.raises(WeightsError) as err:
        read_weights(path)
    message = str(err.value)
    assert "bad.caffemodel" in message and "'conv' blob 0" in message and "holds 6" in message
    offset = int(message.split("byte ")[1].split(":")[0])
    assert wire.decode(data, "BlobProto", offset=offset, end=offset + wire.encoded_size(good.layer[1].blobs[0])) \
        == good.layer[1].blobs[0]


def test_negative_legacy_dimension_is_an_error(tmp_path):
    blob = _blob(num=-1, channels=1, height=1, width=1)
    net = Message("NetParameter", layer=[Message("LayerParameter", name="n", blobs=[blob])])
    path = tmp_path / "neg.caffemodel"
    path.write_bytes(wire.encode(net))
    with pytest.raises(WeightsError, match="negative"):
        read_weights(path)


def test_duplicate_layer_names_last_wins_in_file_order(tmp_path):
    net = caffemodel_message({"a": [np.ones(2, np.float32)], "b": [np.zeros(1, np.float32)]})
    net.layer.append(Message("LayerParameter", name="a", blobs=[net.layer[1].blobs[0]]))
    path = tmp_path / "dup.caffemodel"
    path.write_bytes(wire.encode(net))
    got = read_weights(path)
    assert list(got) == ["b", "a"] and got["a"][0].shape == (1,)


def test_layer_and_layers_together_is_refused(tmp_path):
    net = caffemodel_message({"a": [np.ones(2, np.float32)]})
    net.layers.append(Message("V1LayerParameter", name="v1"))
    path = tmp_path / "both.caffemodel"
    path.write_bytes(wire.encode(net))
    with pytest.raises(UpgradeError, match="both"):
        read_weights(path)


def test_v0_layers_are_refused_not_silently_skipped(tmp_path):
    v0_layer = b"\x0a\x04\x0a\x02c1"            # V0LayerParameter { name: "c1" }
    layers_entry = b"\x0a" + bytes([len(v0_layer)]) + v0_layer   # V1LayerParameter.layer (field 1)
    path = tmp_path / "v0.caffemodel"
    path.write_bytes(b"\x12" + bytes([len(layers_entry)]) + layers_entry)
    with pytest.raises(UpgradeError, match="V0") as err:
        read_weights(path)
    assert "byte 2" in str(err.value)


# --------------------------------------------------------------------------- bad files


def _assert_names_file_and_byte(err: CaffeFormatError, path: Path) -> None:
    assert err.path == str(path)
    assert path.name in str(err) and "byte " in str(err)


@pytest.mark.golden
def test_every_truncation_is_an_error_except_at_layer_boundaries(golden, tmp_path):
    source = golden / "voc-fcn8s" / "weights.caffemodel"
    data = source.read_bytes()
    net = read_caffemodel(source)
    ends, pos = {}, len(wire.encode(Message("NetParameter", name=net.name)))
    for k, layer in enumerate(net.layer, start=1):
        pos += len(wire.encode(Message("NetParameter", layer=[layer])))
        ends[pos] = k
    assert pos == len(data)
    lengths = sorted(set(range(0, 48)) | set(range(48, len(data), len(data) // 97)) | set(ends)
                     | {e - 1 for e in ends} | {len(data) - 1})
    path = tmp_path / "cut.caffemodel"
    errors = 0
    for n in lengths:
        path.write_bytes(data[:n])
        if n in ends:
            assert [layer.name for layer in read_caffemodel(path).layer] == \
                   [layer.name for layer in net.layer[:ends[n]]]
            continue
        with pytest.raises(CaffeFormatError) as err:
            read_weights(path)
        _assert_names_file_and_byte(err.value, path)
        errors += 1
    assert errors > 100


@pytest.mark.golden
def test_flipped_bytes_give_a_format_error_or_a_valid_net(golden, tmp_path):
    source = golden / "voc-fcn8s" / "weights.caffemodel"
    data = source.read_bytes()
    positions: dict[int, int] = {}
    wire.decode(data, "NetParameter", positions=positions)
    starts = sorted(positions.values())
    rng = np.random.default_rng(20150607)
    path = tmp_path / "flip.caffemodel"
    outcomes = {"error": 0, "read": 0}
    for trial in range(300):
        corrupt = bytearray(data)
        near_structure = trial % 3 != 0
        for _ in range(int(rng.integers(1, 4))):
            if near_structure:
                at = int(rng.choice(starts)) + int(rng.integers(-3, 12))
            else:
                at = int(rng.integers(0, len(data)))
            at = min(max(at, 0), len(data) - 1)
            corrupt[at] ^= 1 << int(rng.integers(0, 8))
        path.write_bytes(bytes(corrupt))
        try:
            read_weights(path)
            outcomes["read"] += 1
        except CaffeFormatError as err:
            _assert_names_file_and_byte(err, path)
            outcomes["error"] += 1
    assert outcomes["error"] > 50 and outcomes["read"] > 0


def _png_bytes() -> bytes:
    from io import BytesIO

    from PIL import Image

    out = BytesIO()
    Image.new("RGB", (4, 4), "red").save(out, format="PNG")
    return out.getvalue()


@pytest.mark.parametrize("content, expected", [
    (b"", "empty file"),
    (_png_bytes(), "PNG image"),
    (b"\xff\xd8\xff\xe0\x00\x10JFIF\x00", "JPEG image"),
    (b'name: "fcn"\nlayer {\n  name: "data"\n  type: "Input"\n}\n', "text file"),
    (b"<!DOCTYPE html>\n<html><body>Not Found</body></html>\n", "HTML page"),
    (b"PK\x03\x04" + bytes(60), "zip archive"),
    (b"\x1f\x8b\x08\x00" + bytes(20), "gzip"),
    (b"\x93NUMPY\x01\x00", "NumPy"),
])
def test_foreign_files_are_named_as_what_they_are(tmp_path, content, expected):
    path = tmp_path / "model.caffemodel"
    path.write_bytes(content)
    for reader in (read_caffemodel, read_weights):
        with pytest.raises(WeightsError, match=expected) as err:
            reader(path)
        _assert_names_file_and_byte(err.value, path)


@pytest.mark.golden
def test_real_prototxt_given_as_weights(golden, tmp_path):
    path = golden / "voc-fcn32s" / "deploy.prototxt"
    with pytest.raises(WeightsError, match="text file"):
        read_weights(path)


@pytest.mark.golden
def test_hdf5_given_to_the_binary_reader_says_so(golden):
    with pytest.raises(WeightsError, match="HDF5"):
        read_caffemodel(golden / "voc-fcn8s" / "weights.caffemodel.h5")


LAYER_TAG = b"\xa2\x06"   # NetParameter.layer, field 100, length-delimited


@pytest.mark.parametrize("content, offset, expected", [
    (LAYER_TAG + wire.varint_bytes(1000) + b"\x0a\x01a", 2, "length 1000 runs past"),
    (LAYER_TAG + wire.varint_bytes(2**62) + b"\x0a", 2, "runs past"),
    (LAYER_TAG + b"\x0a" + b"\x3a\x08" + b"\x2a\x86\xff\xff\xff\x0f\x00\x00", 6, "runs past"),
    (LAYER_TAG + b"\x07" + b"\x3a\x05\x2a\x03abc", 7, "not a multiple of 4"),
    (b"\x0a" + b"\xff" * 11, 1, "does not fit in 64 bits"),
    (b"\x0a\x80", 1, "truncated varint"),
    (b"\x0e\x00", 0, "invalid wire type 6"),
    (b"\x0f\x00", 0, "invalid wire type 7"),
    (b"\x0c", 0, "end-group tag"),
    (b"\x08\x01", 0, "wire type 0 for a string field"),
    (b"\x00\x01", 0, "field number 0"),
    (b"\x0a\x02\xc3\x28", 2, "not valid UTF-8"),
    (b"\x20\x80\x80\x80\x80\x10", 1, "out of range for int32"),   # input_dim = 2**32
    (b"\x32\x02\x08\x07", 3, "not a value of enum Phase"),         # state { phase: 7 }
    (b"\x80\x80\x80\x80\x20", 0, "does not fit in 32 bits"),
    (b"\xab\x01", 2, "group 21 is not closed"),
])
def test_malformed_wire_data_is_a_wire_format_error(tmp_path, content, offset, expected):
    path = tmp_path / "bad.caffemodel"
    path.write_bytes(content)
    start = time.perf_counter()
    with pytest.raises(WireFormatError, match=expected) as err:
        read_caffemodel(path)
    assert time.perf_counter() - start < 2.0
    _assert_names_file_and_byte(err.value, path)
    assert err.value.where == f"byte {offset}"


def test_absurdly_nested_groups_are_refused_without_recursion_error(tmp_path):
    path = tmp_path / "deep.caffemodel"
    path.write_bytes(b"\xab\x01" * 100_000 + b"\xac\x01" * 100_000)   # unknown field 21, groups
    with pytest.raises(WireFormatError, match="nested deeper than 64"):
        read_caffemodel(path)


def test_huge_packed_lengths_fail_before_allocating(tmp_path):
    blob = b"\x2a" + wire.varint_bytes(2**40) + b"\x00" * 8            # BlobProto.data, 1 TB declared
    layer = b"\x3a" + wire.varint_bytes(len(blob)) + blob
    path = tmp_path / "huge.caffemodel"
    path.write_bytes(LAYER_TAG + wire.varint_bytes(len(layer)) + layer)
    with pytest.raises(WireFormatError, match="length 1099511627776 runs past") as err:
        read_caffemodel(path)
    assert "NetParameter.layer[0].blobs[0].data" in str(err.value)


@pytest.mark.golden
def test_broken_hdf5_files(golden, tmp_path):
    truncated = tmp_path / "cut.h5"
    truncated.write_bytes((golden / "voc-fcn8s" / "weights.caffemodel.h5").read_bytes()[:5000])
    with pytest.raises(WeightsError, match="HDF5") as err:
        read_weights(truncated)
    assert err.value.path == str(truncated)

    no_data = tmp_path / "nodata.h5"
    with h5py.File(no_data, "w") as f:
        f.create_group("weights")
    with pytest.raises(WeightsError, match="no /data group"):
        read_weights(no_data)

    gap = tmp_path / "gap.h5"
    with h5py.File(gap, "w") as f:
        f.create_dataset("data/conv/1", data=np.ones(3, np.float32))
    with pytest.raises(WeightsError, match="not named 0") as err:
        read_hdf5(gap)
    assert err.value.where == "/data/conv"

    strings = tmp_path / "strings.h5"
    with h5py.File(strings, "w") as f:
        f.create_dataset("data/conv/0", data=np.array([b"a", b"b"]))
    with pytest.raises(WeightsError, match="not numbers"):
        read_hdf5(strings)


@pytest.mark.golden
def test_damaged_hdf5_reads_or_gives_weights_error(golden, tmp_path):
    data = (golden / "voc-fcn8s" / "weights.caffemodel.h5").read_bytes()
    rng = np.random.default_rng(7)
    path = tmp_path / "damaged.h5"
    outcomes = {"error": 0, "read": 0}
    for trial in range(60):
        corrupt = bytearray(data[:int(rng.integers(8, len(data)))] if trial % 4 == 0 else data)
        for _ in range(int(rng.integers(1, 5)) if trial % 4 else 0):
            at = int(rng.integers(0, 40_000))   # the groups, heaps and object headers come first
            corrupt[at] ^= 1 << int(rng.integers(0, 8))
        path.write_bytes(bytes(corrupt))
        try:
            read_weights(path)
            outcomes["read"] += 1
        except WeightsError as err:
            assert err.path == str(path) and path.name in str(err)
            outcomes["error"] += 1
    assert outcomes["error"] >= 15


def test_hdf5_accepts_double_and_integer_datasets_as_caffe_does(tmp_path):
    path = tmp_path / "mixed.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("data/a/0", data=np.linspace(0, 1, 6).reshape(2, 3))
        f.create_dataset("data/a/1", data=np.arange(4, dtype=">i4"))
        f.create_group("data/relu")
    got = read_weights(path)
    assert list(got) == ["a"]
    assert np.array_equal(got["a"][0], np.linspace(0, 1, 6).reshape(2, 3).astype(np.float32))
    assert got["a"][1].dtype == np.float32 and np.array_equal(got["a"][1], np.arange(4))


# --------------------------------------------------------------------------- wire-level behaviour


def test_unknown_fields_of_every_wire_type_are_skipped():
    net = caffemodel_message({"a": [np.arange(3, dtype=np.float32)]})
    plain = wire.encode(net)
    unknown = (b"\xf8\x3e\x96\x01"                 # field 1007, varint 150
               + b"\xf9\x3e" + bytes(8)            # fixed64
               + b"\xfa\x3e\x03abc"                # length-delimited
               + b"\xfd\x3e" + bytes(4)            # fixed32
               + b"\xfb\x3e\x08\x01\xfc\x3e")      # group holding a varint
    seen: dict = {}
    decoded = wire.decode(unknown + plain + unknown, "NetParameter", unknown=seen)
    assert decoded == net
    assert seen == {("NetParameter", 1007): 0}


def test_unpacked_and_split_packed_floats_are_joined():
    values = np.linspace(-1, 1, 300_000).astype(np.float32)
    unpacked = b"".join(b"\x2d" + v.tobytes() for v in values[:200_000])   # BlobProto.data, fixed32
    packed = b"\x2a" + wire.varint_bytes(400_000) + values[200_000:].tobytes()
    start = time.perf_counter()
    blob = wire.decode(unpacked + b"\x08\x01" + packed, "BlobProto")
    assert time.perf_counter() - start < 2.0
    assert blob.num == 1
    assert isinstance(blob.data, np.ndarray) and np.array_equal(blob.data, values)


def test_repeated_optional_fields_follow_protobuf():
    first = wire.encode(Message("LayerParameter", name="a", convolution_param=Message(
        "ConvolutionParameter", num_output=3, pad=[1])))
    second = wire.encode(Message("LayerParameter", name="b", convolution_param=Message(
        "ConvolutionParameter", bias_term=False, pad=[2])))
    merged = wire.decode(first + second, "LayerParameter")
    assert merged.name == "b"                                     # last scalar wins
    assert merged.convolution_param.num_output == 3               # messages merge
    assert merged.convolution_param.bias_term is False
    assert merged.convolution_param.pad == [1, 2]                 # repeated fields append


def test_negative_integers_use_ten_byte_varints_like_protobuf():
    msg = Message("NetParameter", input_dim=[-1, 2])
    data = wire.encode(msg)
    assert data == b"\x20" + b"\xff" * 9 + b"\x01" + b"\x20\x02"
    assert wire.decode(data, "NetParameter") == msg


def test_encoder_rejects_values_the_schema_cannot_hold():
    with pytest.raises(ValueError, match="out of range for int32"):
        wire.encode(Message("NetParameter", input_dim=[2**31]))
    with pytest.raises(ValueError, match="not a value of enum"):
        wire.encode(Message("PoolingParameter", pool="MEDIAN"))
    with pytest.raises(ValueError, match="not an integer"):
        wire.encode(Message("ConvolutionParameter", num_output=2.5))
