"""Data: the reference layers' preprocessing and sample order, layouts, errors, param_str."""
from __future__ import annotations

import json
import random
import re
import shutil

import numpy as np
import pytest
import scipy.io
from PIL import Image

from reproduce.data import (DatasetError, ParamStrError, SampleError, ReferenceSampler, SBDSegmentation,
                            UnknownDataLayerError, VOCSegmentation, classification_samples,
                            make_data_source, make_synthetic_dataset, parse_param_str)
from reproduce.data.nyud import NYUDSegmentation
from reproduce.data.pascalcontext import PASCALContextSegmentation
from reproduce.data.siftflow import SIFTFlowSegmentation
from reproduce.data.synthetic import write_sbd_label
from reproduce.data.torch_loader import PrefetchingSource, make_dataloader

MEAN = (104.00699, 116.66877, 122.67892)
SBDD_PARAM_STR = ("{\\'sbdd_dir\\': \\'../data/sbdd/dataset\\', \\'seed\\': 1337, \\'split\\': \\'train\\', "
                  "\\'mean\\': (104.00699, 116.66877, 122.67892)}")


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("synth"), n_train=10, n_val=4, seed=3)


# -- voc_layers.py load_image / load_label, written out literally --------------------------
def reference_load_image(path, mean):
    with Image.open(path) as im:  # the reference leaves the file open
        in_ = np.array(im, dtype=np.float32)
    in_ = in_[:, :, ::-1]
    in_ -= np.array(mean)
    in_ = in_.transpose((2, 0, 1))
    return in_


def reference_voc_label(path):
    with Image.open(path) as im:
        label = np.array(im, dtype=np.uint8)
    return label[np.newaxis, ...]


def reference_sbd_label(path):
    mat = scipy.io.loadmat(path)
    label = mat["GTcls"][0]["Segmentation"][0].astype(np.uint8)
    return label[np.newaxis, ...]


def python2_randint(a, b):
    """Python 2.7's randint(a, b) on the global generator: randrange's int(istart + int(random() * width))."""
    return int(a + int(random.random() * (b + 1 - a)))


def reference_order(n, seed, count, randint=random.randint):
    """The reference layers' indices: global random.seed, then randint per sample."""
    saved = random.getstate()
    try:
        random.seed(seed)
        idx = randint(0, n - 1)
        order = []
        for _ in range(count):
            order.append(idx)          # reshape loads indices[idx]
            idx = randint(0, n - 1)    # forward picks the next
        return order
    finally:
        random.setstate(saved)


# random.seed(1337); [random.randint(0, 8497) for _ in range(20)] as printed by CPython 2.7.18
PYTHON27_SBD_TRAIN_ORDER = [5249, 4531, 3108, 4978, 1408, 7005, 3260, 6710, 7832, 2614,
                            8432, 1741, 5577, 7752, 928, 6972, 3388, 555, 5941, 2958]


def bitwise_equal(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


# -- preprocessing --------------------------------------------------------------------------
def test_voc_sample_equals_reference_preprocessing(synth):
    voc = VOCSegmentation(synth.voc_dir, "train", mean=MEAN)
    for sample_id in voc.ids[:4]:
        image, label = voc.load(sample_id)
        assert bitwise_equal(image, reference_load_image(voc.image_path(sample_id), MEAN))
        assert bitwise_equal(label, reference_voc_label(voc.label_path(sample_id)))
        assert image.dtype == np.float32 and label.dtype == np.uint8 and label.shape[0] == 1
        assert image.shape == (3,) + label.shape[1:]


def test_sbd_sample_equals_reference_preprocessing(synth):
    sbd = SBDSegmentation(synth.sbdd_dir, "train", mean=MEAN)
    image, label = sbd[2]
    assert bitwise_equal(image, reference_load_image(sbd.image_path(sbd.ids[2]), MEAN))
    assert bitwise_equal(label, reference_sbd_label(sbd.label_path(sbd.ids[2])))


def test_synthetic_labels_voc_void_band_sbd_none(synth):
    voc = VOCSegmentation(synth.voc_dir, "train")
    sbd = SBDSegmentation(synth.sbdd_dir, "train")
    voc_label, sbd_label = voc[0][1][0], sbd[0][1][0]
    assert 255 in voc_label and 255 not in sbd_label
    kept = voc_label != 255
    assert np.array_equal(voc_label[kept], sbd_label[kept])
    present = set(np.unique(np.concatenate([sbd[i][1].ravel() for i in range(len(sbd))])))
    assert present <= {0, *synth.class_indices} and len(present) >= 3


def test_sbd_mat_round_trip(tmp_path):
    label = np.random.default_rng(0).integers(0, 21, size=(7, 9)).astype(np.uint8)
    path = tmp_path / "x.mat"
    write_sbd_label(path, label)
    assert bitwise_equal(reference_sbd_label(path)[0], label)


def test_synthetic_dataset_is_deterministic(tmp_path):
    a = make_synthetic_dataset(tmp_path / "a", n_train=3, n_val=1, seed=7)
    b = make_synthetic_dataset(tmp_path / "b", n_train=3, n_val=1, seed=7)
    for relative in ("pascal/VOC2011/JPEGImages/synth_00002.jpg",
                     "pascal/VOC2011/SegmentationClass/synth_00003.png",
                     "pascal/VOC2011/ImageSets/Segmentation/seg11valid.txt", "sbdd/dataset/train.txt"):
        assert (a.root / relative).read_bytes() == (b.root / relative).read_bytes()
    for sample_id in a.train_ids:
        with Image.open(a.voc_dir / "JPEGImages" / f"{sample_id}.jpg") as image:
            assert all(48 <= side <= 96 for side in image.size)


def test_classification_samples(synth):
    images, labels = classification_samples(synth.voc_dir, synth.train_ids, size=16)
    assert images.shape == (len(labels), 3, 16, 16) and images.dtype == np.float32
    assert set(labels) <= {0, *synth.class_indices} and 0 in labels


# -- errors -------------------------------------------------------------------------------------
def test_missing_dataset_dir_lists_the_layout(tmp_path):
    with pytest.raises(DatasetError, match="does not exist") as info:
        SBDSegmentation(tmp_path / "nowhere", "train")
    assert "cls/<id>.mat" in str(info.value) and "img/<id>.jpg" in str(info.value)
    with pytest.raises(DatasetError, match=r"split list .*seg11valid\.txt"):
        VOCSegmentation(tmp_path, "seg11valid")


def test_missing_sample_file_is_named(synth, tmp_path):
    root = shutil.copytree(synth.voc_dir, tmp_path / "voc")
    (root / "JPEGImages" / f"{synth.train_ids[1]}.jpg").unlink()
    with pytest.raises(DatasetError, match=rf"missing file .*{synth.train_ids[1]}\.jpg") as info:
        VOCSegmentation(root, "train")
    assert "SegmentationClass/<id>.png" in str(info.value)


def test_mismatched_label_size_names_both_files(synth, tmp_path):
    root = shutil.copytree(synth.sbdd_dir, tmp_path / "sbd")
    sample_id = synth.train_ids[0]
    write_sbd_label(root / "cls" / f"{sample_id}.mat", np.zeros((5, 6), np.uint8))
    with pytest.raises(ValueError, match=rf"img/{sample_id}\.jpg.*cls/{sample_id}\.mat"):
        SBDSegmentation(root, "train").load(sample_id)


def test_grayscale_image_and_malformed_mat_are_named(synth, tmp_path):
    root = shutil.copytree(synth.sbdd_dir, tmp_path / "sbd")
    sample_id = synth.train_ids[0]
    Image.new("L", (50, 50)).save(root / "img" / f"{sample_id}.jpg")
    scipy.io.savemat(str(root / "cls" / f"{synth.train_ids[1]}.mat"), {"other": np.zeros(3)})
    dataset = SBDSegmentation(root, "train")
    with pytest.raises(ValueError, match=rf"{sample_id}\.jpg: expected an RGB image"):
        dataset.load(sample_id)
    with pytest.raises(ValueError, match=rf"{synth.train_ids[1]}\.mat: not an SBD class label"):
        dataset.load(synth.train_ids[1])


@pytest.mark.parametrize("content", [b"garbage" * 10, b"", b"MATLAB 5.0 MAT-file" + b"\0" * 200],
                         ids=["garbage", "empty", "truncated"])
def test_an_unreadable_sample_is_a_sample_error_naming_the_sample_and_file(synth, tmp_path, content):
    root = shutil.copytree(synth.sbdd_dir, tmp_path / "sbd")
    sample_id = synth.train_ids[1]
    (root / "cls" / f"{sample_id}.mat").write_bytes(content)
    dataset = SBDSegmentation(root, "train")
    index = dataset.ids.index(sample_id)
    with pytest.raises(SampleError, match=rf"SBD sample '{sample_id}' of .*train\.txt: .*"
                                          rf"{sample_id}\.mat"):
        dataset[index]
    dataset[dataset.ids.index(synth.train_ids[0])]  # the other samples still load


# -- sample order ---------------------------------------------------------------------------------
def test_first_1000_training_ids_follow_the_reference_under_python3(synth):
    with open(synth.sbdd_dir / "train.txt") as split_file:
        ids = split_file.read().splitlines()
    expected = [ids[i] for i in reference_order(len(ids), 1337, 1000)]
    sampler = ReferenceSampler(len(ids), randomize=True, seed=1337, split="train", flavor="python3")
    assert [ids[i] for i in sampler.take(1000)] == expected
    # at the scale of SBD train (8498 images) too
    assert (ReferenceSampler(8498, seed=1337, split="train", flavor="python3").take(1000)
            == reference_order(8498, 1337, 1000))


def test_first_1000_training_ids_follow_the_reference_under_python2(synth):
    with open(synth.sbdd_dir / "train.txt") as split_file:
        ids = split_file.read().splitlines()
    expected = [ids[i] for i in reference_order(len(ids), 1337, 1000, python2_randint)]
    sampler = ReferenceSampler(len(ids), seed=1337, split="train")  # python2 is the default
    assert sampler.flavor == "python2" and [ids[i] for i in sampler.take(1000)] == expected
    sbd_scale = ReferenceSampler(8498, seed=1337, split="train").take(1000)
    assert sbd_scale == reference_order(8498, 1337, 1000, python2_randint)
    assert sbd_scale[:20] == PYTHON27_SBD_TRAIN_ORDER
    assert sbd_scale[:20] != reference_order(8498, 1337, 20)  # Python 3 draws differ


def test_sampler_leaves_the_global_random_alone():
    random.seed(5)
    before = random.getstate()
    ReferenceSampler(100, seed=1337, split="train").take(10)
    assert random.getstate() == before


def test_eval_splits_are_sequential_and_wrap():
    sampler = ReferenceSampler(3, randomize=True, seed=1337, split="seg11valid")
    assert not sampler.randomize and sampler.take(7) == [0, 1, 2, 0, 1, 2, 0]
    assert ReferenceSampler(3, randomize=False, split="train").take(4) == [0, 1, 2, 0]


def test_sampler_state_is_json_and_resumes_exactly():
    sampler = ReferenceSampler(8498, seed=1337, split="train")
    sampler.take(37)
    state = json.loads(json.dumps(sampler.state_dict()))
    expected = sampler.take(100)
    resumed = ReferenceSampler(8498, seed=0, split="train")
    resumed.load_state_dict(state)
    assert resumed.take(100) == expected
    with pytest.raises(ValueError, match="does not fit"):
        ReferenceSampler(10, split="train").load_state_dict(state)
    with pytest.raises(ValueError, match="does not fit"):
        ReferenceSampler(8498, split="train", flavor="python3").load_state_dict(state)


# -- param_str and the layer registry -----------------------------------------------------------
def test_param_str_of_the_upstream_prototxts(upstream):
    text = (upstream / "voc-fcn32s" / "train.prototxt").read_text()
    raw = re.search(r'param_str: "(.*)"', text).group(1)
    params = parse_param_str(raw, "data")  # still prototxt-escaped
    assert params == {"sbdd_dir": "../data/sbdd/dataset", "seed": 1337, "split": "train", "mean": MEAN}
    assert parse_param_str(raw.replace("\\'", "'")) == params


def test_param_str_forms_and_rejections():
    assert parse_param_str("dict(split='val', mean=(1, 2, 3))") == {"split": "val", "mean": (1, 2, 3)}
    malicious = ["__import__('os').system('x')", "dict(a=__import__('os').system('x'))",
                 "{'a': (lambda: 1)()}", "{'a': open('/etc/passwd').read()}", "dict(**{'a': 1})"]
    for text in malicious:
        with pytest.raises(ParamStrError, match="layer 'data'.*not a literal dict"):
            parse_param_str(text, "data")
    with pytest.raises(ParamStrError, match="layer 'x'.*must describe a dict"):
        parse_param_str("[1, 2]", "x")
    with pytest.raises(ParamStrError, match="empty"):
        parse_param_str("  ", "x")


def test_make_data_source_follows_the_reference(synth):
    source = make_data_source("voc_layers", "SBDDSegDataLayer", SBDD_PARAM_STR, root_override=synth.sbdd_dir)
    assert source.tops == ("data", "label") and len(source) == len(synth.train_ids)
    order = reference_order(len(source), 1337, 12, python2_randint)
    for index in order:
        assert source.next_id == synth.train_ids[index]
        data, label = source.next()
        image, expected_label = SBDSegmentation(synth.sbdd_dir, "train").load(synth.train_ids[index])
        assert data.shape == (1,) + image.shape and label.shape == (1,) + expected_label.shape
        assert bitwise_equal(data[0], image) and bitwise_equal(label[0], expected_label)


def test_make_data_source_val_is_sequential_and_resumable(synth):
    params = {"voc_dir": "pascal/VOC2011", "seed": 1337, "split": "seg11valid", "mean": MEAN}
    source = make_data_source("voc_layers", "VOCSegDataLayer", params, base_dir=synth.root)

    def next_ids(count):
        ids = []
        for _ in range(count):
            ids.append(source.next_id)
            source.next()
        return ids

    assert next_ids(len(synth.val_ids) + 1) == list(synth.val_ids) + [synth.val_ids[0]]
    state = json.loads(json.dumps(source.state_dict()))
    following = next_ids(3)
    source.load_state_dict(state)
    assert next_ids(3) == following


def test_unknown_layer_and_missing_params():
    with pytest.raises(UnknownDataLayerError, match="voc_layers.Nope"):
        make_data_source("voc_layers", "Nope", {})
    with pytest.raises(ParamStrError, match="lacks 'split'"):
        make_data_source("voc_layers", "VOCSegDataLayer", {"voc_dir": "x", "mean": MEAN})


# -- background loading ----------------------------------------------------------------------------
def test_prefetching_keeps_order_and_consumed_state(synth):
    plain = make_data_source("voc_layers", "SBDDSegDataLayer", SBDD_PARAM_STR, root_override=synth.sbdd_dir)
    other = make_data_source("voc_layers", "SBDDSegDataLayer", SBDD_PARAM_STR, root_override=synth.sbdd_dir)
    with PrefetchingSource(other, depth=3, threads=2) as prefetching:
        for _ in range(5):
            expected, got = plain.next(), prefetching.next()
            assert all(bitwise_equal(a, b) for a, b in zip(expected, got))
        assert prefetching.state_dict() == plain.state_dict()
        state = prefetching.state_dict()
        following = [plain.next() for _ in range(2)]
        prefetching.next()
        prefetching.load_state_dict(state)
        for expected in following:
            assert all(bitwise_equal(a, b) for a, b in zip(expected, prefetching.next()))


def test_torch_dataloader_preserves_the_order(synth):
    torch = pytest.importorskip("torch")
    plain = make_data_source("voc_layers", "SBDDSegDataLayer", SBDD_PARAM_STR, root_override=synth.sbdd_dir)
    other = make_data_source("voc_layers", "SBDDSegDataLayer", SBDD_PARAM_STR, root_override=synth.sbdd_dir)
    for data, label in make_dataloader(other, 4, num_workers=1):
        expected_data, expected_label = plain.next()
        assert data.dtype == torch.float32 and np.array_equal(data.numpy(), expected_data)
        assert np.array_equal(label.numpy(), expected_label)
    assert other.state_dict() == plain.state_dict()
    for data, label in make_dataloader(other, 2, num_workers=0, device="cpu"):   # in the process
        expected_data, expected_label = plain.next()
        assert np.array_equal(data.numpy(), expected_data) and np.array_equal(label.numpy(), expected_label)
    # what a worker hands over: the decoded uint8 picture (and its mean's table), not float32
    from reproduce.data.torch_loader import _IndexedSamples

    image, label = _IndexedSamples(other)[0]
    assert image.value.rgb.dtype == np.uint8 and image.value.rgb.shape[2] == 3
    assert label.value.dtype == np.uint8 and label.value.shape[:2] == (1, 1)
    assert other.dataset[0][0].dtype == np.float32   # the source's own dataset is unchanged


# -- the other reference datasets, on tiny hand-made copies -----------------------------------------
def _rgb(path, height=6, width=5, seed=0):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)).save(path)


def test_siftflow_labels_rotate_void_to_255(tmp_path):
    sub = "spatial_envelope_256x256_static_8outdoorcategories"
    (tmp_path / "trainval.txt").write_text("a\n")
    _rgb(tmp_path / "Images" / sub / "a.png")
    (tmp_path / "Images" / sub / "a.png").rename(tmp_path / "Images" / sub / "a.jpg")
    semantic = np.array([[0, 1, 33, 5, 2]] * 6, dtype=np.float64)
    geometric = np.array([[-1, 0, 1, 2, 3]] * 6, dtype=np.float64)
    for folder, value in (("SemanticLabels", semantic), ("GeoLabels", geometric)):
        (tmp_path / folder / sub).mkdir(parents=True)
        scipy.io.savemat(str(tmp_path / folder / sub / "a.mat"), {"S": value})
    source = make_data_source("siftflow_layers", "SIFTFlowSegDataLayer",
                              {"siftflow_dir": str(tmp_path), "seed": 1337, "split": "trainval"})
    data, sem, geo = source.next()
    assert source.tops == ("data", "sem", "geo") and data.shape == (1, 3, 6, 5)
    assert sem[0, 0, 0].tolist() == [255, 0, 32, 4, 1] and geo[0, 0, 0].tolist() == [255, 255, 0, 1, 2]
    mean = np.array((114.578, 115.294, 108.353), dtype=np.float32)
    assert bitwise_equal(data[0], np.ascontiguousarray(reference_load_image(
        tmp_path / "Images" / sub / "a.jpg", mean)))
    scipy.io.savemat(str(tmp_path / "SemanticLabels" / sub / "a.mat"), {"T": semantic})
    with pytest.raises(SampleError, match=r"sample 'a' .*SemanticLabels/.*/a\.mat: not a SIFT Flow "
                                          r"semantic label \(expected a variable 'S'\)"):
        SIFTFlowSegmentation(tmp_path, "trainval")[0]


def test_nyud_tops_in_parameter_order(tmp_path):
    (tmp_path / "trainval.txt").write_text("0001\n")
    _rgb(tmp_path / "data" / "images" / "img_0001.png")
    _rgb(tmp_path / "data" / "hha" / "img_0001.png", seed=1)
    (tmp_path / "data" / "depth").mkdir()
    Image.fromarray(np.full((6, 5), 1000, dtype=np.uint16)).save(tmp_path / "data" / "depth" / "img_0001.png")
    (tmp_path / "segmentation").mkdir()
    scipy.io.savemat(str(tmp_path / "segmentation" / "img_0001.mat"),
                     {"segmentation": np.array([[0, 1, 40, 2, 3]] * 6, dtype=np.uint8)})
    params = {"tops": ["color", "depth", "hha", "label"], "seed": 1337, "nyud_dir": str(tmp_path),
              "split": "trainval"}
    color, depth_top, hha, label = make_data_source("nyud_layers", "NYUDSegDataLayer", params).next()
    assert color.shape == hha.shape == (1, 3, 6, 5) and depth_top.shape == label.shape == (1, 1, 6, 5)
    assert label[0, 0, 0].tolist() == [255, 0, 39, 1, 2]
    assert np.allclose(depth_top, np.log(np.float32(1000)) - np.float32(7.844))
    with Image.open(tmp_path / "data" / "hha" / "img_0001.png") as image:
        raw_hha = np.array(image, dtype=np.float32)
    expected_hha = (raw_hha - np.array((132.431, 94.076, 118.477), dtype=np.float32)).transpose(2, 0, 1)
    assert bitwise_equal(hha[0], np.ascontiguousarray(expected_hha))  # HHA is not channel-swapped
    with pytest.raises(ValueError, match="tops must be chosen"):
        NYUDSegmentation(tmp_path, "trainval", tops=["color", "normals"])
    (tmp_path / "segmentation" / "img_0001.mat").write_bytes(b"not a mat file at all")
    with pytest.raises(SampleError, match=r"segmentation/img_0001\.mat: not an NYUDv2 label "
                                          r"\(expected a variable 'segmentation'\)"):
        NYUDSegmentation(tmp_path, "trainval", tops=["label"])[0]


def test_pascalcontext_translates_to_59_classes(tmp_path):
    voc = tmp_path / "pascal" / "VOC2010"
    context = tmp_path / "context"
    (voc / "ImageSets" / "Main").mkdir(parents=True)
    (voc / "ImageSets" / "Main" / "train.txt").write_text("2008_000001\n")
    _rgb(voc / "JPEGImages" / "2008_000002.png")
    (voc / "JPEGImages" / "2008_000002.png").rename(voc / "JPEGImages" / "2008_000001.jpg")
    (context / "trainval").mkdir(parents=True)
    (context / "labels.txt").write_text("1: accordion\n2: aeroplane\n3: air conditioner\n4: table\n5: sky\n")
    (context / "59_labels.txt").write_text("1: aeroplane\n2: diningtable\n3: sky\n")
    scipy.io.savemat(str(context / "trainval" / "2008_000001.mat"),
                     {"LabelMap": np.array([[1, 2, 3, 4, 5]] * 6, dtype=np.uint16)})
    dataset = PASCALContextSegmentation(tmp_path / "pascal", context, "train")
    assert dataset.load("2008_000001")[1][0, 0].tolist() == [0, 1, 0, 2, 3]
    source = make_data_source("pascalcontext_layers", "PASCALContextSegDataLayer",
                              {"context_dir": str(context), "seed": 1337, "split": "train",
                               "voc_dir": "unused"}, root_override=tmp_path / "pascal")
    assert source.next()[1].shape == (1, 1, 6, 5)
    scipy.io.savemat(str(context / "trainval" / "2008_000001.mat"), {"Labels": np.zeros((6, 5))})
    with pytest.raises(SampleError, match=r"2008_000001\.mat: not a PASCAL-Context label "
                                          r"\(expected a variable 'LabelMap'\): KeyError"):
        dataset[0]


def test_siftflow_missing_layout_names_the_folder(tmp_path):
    (tmp_path / "test.txt").write_text("a\n")
    with pytest.raises(DatasetError, match="SemanticLabels"):
        SIFTFlowSegmentation(tmp_path, "test")
