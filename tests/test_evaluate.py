"""reproduce.evaluation.evaluate: the reference score.py procedure, checked against numbers computed here.

A one-layer net (1×1 convolution to 21 scores + the unnormalized SoftmaxWithLoss) makes the
expected histogram and loss computable in numpy; the tiny FCN val/deploy nets check the
real use; two gloo processes check the sharded, all-reduced scoring.
"""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from reproduce.caffe.text import parse
from reproduce.data import make_synthetic_dataset
from reproduce.data.voc import VOC_CLASSES, VOCSegmentation
from reproduce.evaluation.evaluate import EvalResult, evaluate, seg_tests, shard_indices
from reproduce.net import Net

from nonzero import randomize

ONE_LAYER = """
name: "one-layer"
layer { name: "input" type: "Input" top: "data" top: "label"
        input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } shape { dim: 1 dim: 1 dim: 8 dim: 8 } } }
layer { name: "score" type: "Convolution" bottom: "data" top: "score"
        convolution_param { num_output: 21 kernel_size: 1 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "score" bottom: "label" top: "loss"
        loss_param { ignore_label: 255 normalize: false } }
"""


def one_layer_weights(seed: int = 0) -> dict:
    """A nearest-colour classifier of the synthetic classes (score_c = m_c·x − |m_c|²/2), scaled
    down and perturbed by ``seed`` — it segments the generated images fairly, not perfectly."""
    from reproduce.data.synthetic import SYNTHETIC_CLASSES
    from reproduce.data.voc import VOC_MEAN_BGR

    rng = np.random.default_rng(seed)
    colours = {0: (125, 125, 125), **{c: rgb for c, (rgb, _, _) in SYNTHETIC_CLASSES.items()}}
    w = np.zeros((21, 3), np.float64)
    b = np.full(21, -50.0)
    for c, rgb in colours.items():
        m = np.array(rgb[::-1], np.float64) - VOC_MEAN_BGR
        w[c], b[c] = m, -0.5 * m @ m
    w, b = 0.01 * w + rng.normal(0, 1e-3, w.shape), 0.01 * b
    return {"score": [w.reshape(21, 3, 1, 1).astype(np.float32), b.astype(np.float32)]}


def one_layer_net(seed: int = 0) -> Net:
    return Net(parse(ONE_LAYER, "NetParameter"), weights=one_layer_weights(seed))


@pytest.fixture(scope="module")
def voc(tmp_path_factory):
    data = make_synthetic_dataset(tmp_path_factory.mktemp("synth"), n_train=1, n_val=5, seed=3)
    return VOCSegmentation(data.voc_dir, "seg11valid")


def expected_by_hand(dataset, weights):
    """hist and mean loss as score.py + Caffe's SoftmaxWithLoss compute them (float64 numpy)."""
    w, b = weights["score"]
    hist = np.zeros((21, 21))
    loss_sum = 0.0
    for index in range(len(dataset)):
        image, label = dataset[index]
        scores = np.einsum("oc,chw->ohw", w[:, :, 0, 0].astype(np.float64), image) + b[:, None, None]
        pred = scores.argmax(0)
        gt = label[0].astype(int)
        k = (gt >= 0) & (gt < 21)
        hist += np.bincount(21 * gt[k] + pred[k], minlength=21 ** 2).reshape(21, 21)
        logp = scores - scores.max(0) - np.log(np.exp(scores - scores.max(0)).sum(0))
        valid = gt != 255
        loss_sum += -logp[gt[valid], np.nonzero(valid)[0], np.nonzero(valid)[1]].sum()
    return hist, loss_sum / len(dataset)


def test_histogram_loss_and_metrics_match_score_py(voc):
    result = evaluate(one_layer_net(), voc, progress=False)
    hist, loss = expected_by_hand(voc, one_layer_weights())
    np.testing.assert_array_equal(result.hist, hist)
    assert result.count == 5 and result.loss == pytest.approx(loss, rel=1e-4)
    # the reference's formulas on that histogram, NaN classes skipped by nanmean
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        iu = np.diag(hist) / (hist.sum(1) + hist.sum(0) - np.diag(hist))
        freq = hist.sum(1) / hist.sum()
        assert result.overall_acc == pytest.approx(np.diag(hist).sum() / hist.sum())
        assert result.mean_acc == pytest.approx(np.nanmean(np.diag(hist) / hist.sum(1)))
        assert result.mean_iu == pytest.approx(np.nanmean(iu))
        assert result.fwavacc == pytest.approx((freq[freq > 0] * iu[freq > 0]).sum())
    assert 0 < result.mean_iu < 1 and np.isnan(result.per_class_iu).sum() > 0  # absent classes are NaN
    d = result.to_dict()
    assert list(d["per_class_iu"]) == list(VOC_CLASSES)
    absent = VOC_CLASSES[int(np.flatnonzero(np.isnan(result.per_class_iu))[0])]
    assert d["per_class_iu"][absent] is None  # NaN → null, never in the JSON
    assert d["per_class_iu"]["background"] == pytest.approx(result.per_class_iu[0])
    json.dumps(d, allow_nan=False)
    assert d["hist"] == hist.astype(int).tolist()


def test_void_pixels_are_not_counted(voc):
    result = evaluate(one_layer_net(), voc, progress=False)
    labels = np.concatenate([voc[i][1].ravel() for i in range(len(voc))])
    assert (labels == 255).any()
    assert result.hist.sum() == (labels != 255).sum()


def test_plain_module_and_deploy_net_give_the_same_histogram_without_loss(voc):
    w, b = one_layer_weights()["score"]
    conv = torch.nn.Conv2d(3, 21, 1)
    with torch.no_grad():
        conv.weight.copy_(torch.from_numpy(w))
        conv.bias.copy_(torch.from_numpy(b))
    plain = evaluate(conv, voc, progress=False)
    caffe = evaluate(one_layer_net(), voc, progress=False)
    np.testing.assert_array_equal(plain.hist, caffe.hist)
    assert plain.loss is None and plain.to_dict()["loss"] is None
    assert caffe.loss is not None


def test_tiny_fcn_val_net_scores_like_its_deploy_net(voc):
    from reproduce.models import net_param

    val = randomize(Net(net_param("fcn16s", "val", widths="tiny")), seed=0)  # tests/nonzero.py
    weights = val.weights_dict()
    deploy = Net(net_param("fcn16s", "deploy", widths="tiny"), weights=weights)
    two = _Subset(voc, 2)
    a = evaluate(val, two, progress=False)
    b = evaluate(deploy, two, progress=False)
    np.testing.assert_array_equal(a.hist, b.hist)
    assert a.loss is not None and a.loss > 0 and b.loss is None
    assert a.count == 2 and a.hist.sum() > 0
    assert (a.hist.sum(axis=0) > 0).sum() > 1, "every pixel predicted one class proves little"


def test_saved_predictions_are_palette_pngs_in_file_order(voc, tmp_path):
    seen = []
    result = evaluate(one_layer_net(), voc, progress=False, save_dir=tmp_path / "pred",
                      callback=lambda index, sample_id: seen.append((index, sample_id)))
    assert seen == list(enumerate(voc.ids))
    w, b = one_layer_weights()["score"]
    for sample_id, index in zip(voc.ids, range(len(voc))):
        with Image.open(tmp_path / "pred" / f"{sample_id}.png") as png:
            assert png.mode == "P"
            pred = np.array(png)
        image = voc[index][0]
        expected = (np.einsum("oc,chw->ohw", w[:, :, 0, 0], image) + b[:, None, None]).argmax(0)
        np.testing.assert_array_equal(pred, expected)
    assert result.count == len(seen)


def test_seg_tests_prints_the_reference_lines(voc):
    lines = []
    result = seg_tests(one_layer_net(), 4000, voc, log=lines.append, progress=False)
    assert isinstance(result, EvalResult) and len(lines) == 5
    for line, what in zip(lines, ("loss", "overall accuracy", "mean accuracy", "mean IU", "fwavacc")):
        assert line.startswith(">>> ") and f"Iteration 4000 {what} " in line
    assert float(lines[3].rsplit(" ", 1)[1]) == pytest.approx(result.mean_iu)


def test_shard_indices_cover_every_image_once():
    shards = [list(shard_indices(7, r, 3)) for r in range(3)]
    assert shards == [[0, 3, 6], [1, 4], [2, 5]]
    assert list(shard_indices(2, 3, 4)) == []


def test_empty_dataset_is_an_error():
    with pytest.raises(ValueError, match="empty"):
        evaluate(one_layer_net(), [], progress=False)


class _Subset:
    def __init__(self, dataset, n):
        self.dataset, self.n, self.ids = dataset, n, dataset.ids[:n]

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        return self.dataset[index]


# -- two processes over gloo ----------------------------------------------------------------
def _worker(rank: int, world: int, init_file: str, voc_dir: str, out_dir: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        seen = []
        result = evaluate(one_layer_net(), VOCSegmentation(voc_dir, "seg11valid"), progress=False,
                          callback=lambda index, sample_id: seen.append(index))
        with open(f"{out_dir}/rank{rank}.json", "w") as f:
            json.dump({"result": result.to_dict(), "loss": result.loss, "seen": seen}, f)
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_equal_one_process(voc, tmp_path):
    import torch.multiprocessing as mp

    single = evaluate(one_layer_net(), voc, progress=False)
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(voc.root), str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert ranks[0]["seen"] == [0, 2, 4] and ranks[1]["seen"] == [1, 3]  # each scored its own shard
    for rank in ranks:
        assert rank["result"]["hist"] == single.hist.astype(int).tolist()
        assert rank["result"]["count"] == 5
        assert rank["result"]["mean_iu"] == pytest.approx(single.mean_iu, abs=0)
        # per-image losses are float32 sums whose order depends on the thread count (1 in the
        # workers); the all-reduced mean agrees to float32 rounding
        assert rank["loss"] == pytest.approx(single.loss, rel=1e-6)


TWO_INPUTS = """
name: "two-inputs"
layer { name: "input" type: "Input" top: "color" top: "depth" top: "sem" top: "geo"
        input_param { shape { dim: 1 dim: 3 dim: 6 dim: 6 } shape { dim: 1 dim: 1 dim: 6 dim: 6 }
                      shape { dim: 1 dim: 1 dim: 6 dim: 6 } shape { dim: 1 dim: 1 dim: 6 dim: 6 } } }
layer { name: "score_sem" type: "Convolution" bottom: "color" top: "score_sem"
        convolution_param { num_output: 3 kernel_size: 1 } }
layer { name: "score_geo" type: "Convolution" bottom: "depth" top: "score_geo"
        convolution_param { num_output: 2 kernel_size: 1 } }
"""


class _ToppedDataset:
    """Samples as one array per named top, as the SIFT Flow / NYUDv2 datasets yield them."""

    def __init__(self, tops, n=3, seed=0):
        rng = np.random.default_rng(seed)
        self.tops, self.ids, self.samples = tuple(tops), [f"s{i}" for i in range(n)], []
        for _ in range(n):
            depth = rng.normal(size=(1, 6, 6)).astype(np.float32)
            arrays = {"color": rng.normal(size=(3, 6, 6)).astype(np.float32), "depth": depth,
                      "sem": rng.integers(0, 3, (1, 6, 6)).astype(np.float32),
                      "geo": (depth < 0).astype(np.float32)}   # what score_geo predicts exactly
            self.samples.append(tuple(arrays[t] for t in self.tops))

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, index):
        return self.samples[index]


def two_input_net() -> Net:
    geo_w = np.array([1.0, -1.0], np.float32).reshape(2, 1, 1, 1)   # argmax: 0 where depth > 0
    sem_w = np.random.default_rng(1).normal(size=(3, 3, 1, 1)).astype(np.float32)
    return Net(parse(TWO_INPUTS, "NetParameter"),
               weights={"score_sem": [sem_w, np.zeros(3, np.float32)],
                        "score_geo": [geo_w, np.zeros(2, np.float32)]})


def test_every_input_is_fed_by_its_top_and_each_head_scored_on_its_own_label():
    net = two_input_net()
    data = _ToppedDataset(("color", "depth", "sem", "geo"))
    geo = evaluate(net, data, score_blob="score_geo", label_blob="geo", loss_blob=None, progress=False)
    assert geo.overall_acc == 1.0 and geo.count == 3            # depth fed, geo labels used
    sem = evaluate(net, data, score_blob="score_sem", label_blob="sem", loss_blob=None, progress=False)
    expected = np.zeros((3, 3))
    w = net.params["score_sem"][0].data.detach().numpy()[:, :, 0, 0]
    for color, _depth, label, _geo in data.samples:
        pred = np.einsum("oc,chw->ohw", w, color).argmax(0)
        expected += np.bincount(3 * label[0].astype(int).ravel() + pred.ravel(), minlength=9).reshape(3, 3)
    assert np.array_equal(sem.hist, expected)


def test_an_input_the_dataset_does_not_yield_or_a_missing_label_is_one_clear_error():
    net = two_input_net()
    with pytest.raises(ValueError, match=r"needs input\(s\) depth .*its tops: color, sem, geo"):
        evaluate(net, _ToppedDataset(("color", "sem", "geo")), score_blob="score_geo", label_blob="geo",
                 loss_blob=None, progress=False)
    with pytest.raises(ValueError, match=r"sample s0: no 'label' to score against"):
        evaluate(net, _ToppedDataset(("color", "depth", "sem", "geo")), score_blob="score_geo",
                 loss_blob=None, progress=False)
