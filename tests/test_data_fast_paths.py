"""The data path's fast routes give exactly the reference's arrays.

``load_caffe_image``'s table lookup against the reference ``load_image`` steps written out
(float32, RGB→BGR, in-place mean subtraction, CHW), and ``reproduce.data.sbd_mat`` against
``scipy.io.loadmat(path)['GTcls'][0]['Segmentation'][0]``: values, dtype, shape and memory
order; every layout it does not read falls back to loadmat, errors included.
"""
from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import scipy.sparse
from PIL import Image

from reproduce.data.preprocess import load_caffe_image
from reproduce.data.sbd_mat import gtcls_struct, read_segmentation
from reproduce.data.voc import load_sbd_segmentation

MEANS = [np.array((104.00699, 116.66877, 122.67892)), (104.00699, 116.66877, 122.67892),
         np.array([104, 117, 123]), np.float32([104.1, 117.2, 123.3]), 3.7,
         np.array((114.578, 115.294, 108.353))]


def reference_load_image(path, mean):
    in_ = np.array(Image.open(path), dtype=np.float32)
    in_ = in_[:, :, ::-1]
    in_ -= mean
    return in_.transpose((2, 0, 1))


def assert_same_array(mine, reference):
    assert mine.dtype == reference.dtype and mine.shape == reference.shape
    assert np.array_equal(mine, reference)


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_the_table_lookup_is_the_reference_load_image(tmp_path, suffix):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (37, 45, 3), dtype=np.uint8)
    rgb[0, :3] = [[0, 0, 0], [255, 255, 255], [128, 64, 1]]
    path = tmp_path / f"a{suffix}"
    Image.fromarray(rgb).save(path)
    mean_image = np.random.default_rng(1).uniform(90, 130, (37, 45, 3))  # not a table: as written
    for mean in [*MEANS, mean_image, np.float32([[7.5, 8, 9]])]:
        mine = load_caffe_image(path, mean)
        assert_same_array(mine, reference_load_image(path, mean))
        assert mine.flags.c_contiguous
        assert len(np.unique(mine[0])) > 10


@pytest.mark.parametrize("route", ["numpy", "gather"])
def test_workers_uint8_hand_over_finishes_to_the_reference_load_image(tmp_path, route):
    """DataLoader workers hand over the uint8 picture and the mean's table; the consumer's
    finish (NumPy on the CPU, a gather on any other device — its gather run here on the CPU)
    is the reference's array bit for bit."""
    torch = pytest.importorskip("torch")
    from reproduce.data.preprocess import DeferredImage, load_caffe_image_deferred
    from reproduce.data.torch_loader import caffe_image, gather_bgr

    rgb = np.random.default_rng(2).integers(0, 256, (29, 41, 3), dtype=np.uint8)
    rgb[0, :3] = [[0, 0, 0], [255, 255, 255], [128, 64, 1]]
    path = tmp_path / "a.png"
    Image.fromarray(rgb).save(path)
    for mean in MEANS:
        deferred = load_caffe_image_deferred(path, mean)
        assert isinstance(deferred, DeferredImage) and deferred.rgb.dtype == np.uint8
        assert deferred.shape == (3, 29, 41)
        reference = reference_load_image(path, mean)
        assert_same_array(deferred.finish(), reference)
        if route == "numpy":
            finished = caffe_image(deferred, "cpu")
        else:   # the device route (a gather wherever the tensors are), run on the CPU
            finished = gather_bgr(torch.from_numpy(deferred.rgb), torch.from_numpy(deferred.table))
        assert_same_array(finished.numpy()[0], reference)
    mean_image = np.random.default_rng(1).uniform(90, 130, (29, 41, 3))   # no table: the array itself
    assert_same_array(load_caffe_image_deferred(path, mean_image), reference_load_image(path, mean_image))


def test_images_that_are_not_8_bit_rgb_take_the_reference_steps(tmp_path):
    grey = tmp_path / "grey.png"
    Image.fromarray(np.zeros((5, 6), np.uint8)).save(grey)
    with pytest.raises(ValueError, match=r"grey.png: expected an RGB image, got an array of shape \(5, 6\)"):
        load_caffe_image(grey, MEANS[0])
    rgba = tmp_path / "rgba.png"
    Image.fromarray(np.full((5, 6, 4), 9, np.uint8)).save(rgba)
    with pytest.raises(ValueError, match=r"shape \(5, 6, 4\)"):
        load_caffe_image(rgba, MEANS[0])
    rgb = tmp_path / "rgb.png"
    Image.fromarray(np.full((5, 6, 3), 9, np.uint8)).save(rgb)
    with pytest.raises(ValueError, match="broadcast"):  # a mean of 4 fails as the reference's does
        load_caffe_image(rgb, np.zeros(4))


def _segmentation(seed: int, shape=(61, 47)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 21, shape).astype(np.uint8)
    label[rng.random(shape) < 0.1] = 255
    return label


@pytest.mark.parametrize("compress", [True, False])
def test_sbd_reader_is_loadmat_on_sbd_files(tmp_path, compress):
    for seed in range(3):
        path = tmp_path / f"{seed}.mat"
        scipy.io.savemat(path, gtcls_struct(_segmentation(seed)), do_compression=compress)
        reference = scipy.io.loadmat(str(path))["GTcls"][0]["Segmentation"][0].astype(np.uint8)
        mine = read_segmentation(path)
        assert mine is not None, "SBD's layout is read directly"
        assert_same_array(mine, reference)
        assert (mine.flags.f_contiguous, mine.flags.c_contiguous) == (
            reference.flags.f_contiguous, reference.flags.c_contiguous)
        assert len(np.unique(mine)) > 2
        assert_same_array(load_sbd_segmentation(path), reference)


def test_other_layouts_fall_back_to_loadmat(tmp_path):
    seg = _segmentation(5)
    as_double = gtcls_struct(seg)
    as_double["GTcls"]["Segmentation"] = as_double["GTcls"]["Segmentation"].astype(np.float64) + 0.6
    cases = {
        "double.mat": as_double,                       # stored as doubles: loadmat's cast
        "two.mat": {"other": np.arange(3), **gtcls_struct(seg)},
        "sparse.mat": {"GTcls": {"Segmentation": scipy.sparse.csc_matrix(seg.astype(float))}},
    }
    for name, variables in cases.items():
        scipy.io.savemat(tmp_path / name, variables)
    assert read_segmentation(tmp_path / "double.mat") is None
    assert_same_array(load_sbd_segmentation(tmp_path / "double.mat"),
                      scipy.io.loadmat(str(tmp_path / "double.mat"))["GTcls"][0]["Segmentation"][0].astype(np.uint8))
    two = read_segmentation(tmp_path / "two.mat")  # another variable beside GTcls is skipped
    assert two is not None and np.array_equal(two, np.where(seg == 255, 0, seg))
    assert read_segmentation(tmp_path / "sparse.mat") is None
    scipy.io.savemat(tmp_path / "nogt.mat", {"GTinst": {"Segmentation": seg}})
    assert read_segmentation(tmp_path / "nogt.mat") is None
    with pytest.raises(ValueError, match=r"nogt.mat: not an SBD class label"):
        load_sbd_segmentation(tmp_path / "nogt.mat")
    (tmp_path / "junk.mat").write_bytes(b"MATLAB 5.0 MAT-file" + bytes(200))
    assert read_segmentation(tmp_path / "junk.mat") is None
    truncated = tmp_path / "cut.mat"
    scipy.io.savemat(truncated, gtcls_struct(seg))
    truncated.write_bytes(truncated.read_bytes()[:300])
    assert read_segmentation(truncated) is None  # loadmat's own error, as before
