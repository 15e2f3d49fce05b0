"""DataLoader workers hand samples over through fixed shared-memory slots
(reproduce.data.shared_slots): the same arrays as the pipe and as the source itself, in the
reference order, with augmentation, and a reused slot is detected rather than read."""
import pickle
import sys

import numpy as np
import pytest

from reproduce.data import make_synthetic_dataset
from reproduce.data.registry import make_data_source
from reproduce.data.shared_slots import SlotOverwritten, SlotRing

torch = pytest.importorskip("torch")
from reproduce.data import torch_loader  # noqa: E402  (torch first)

MEAN = (104.00699, 116.66877, 122.67892)
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="shared slots travel to workers by fork (Linux)")


def _exact(a, b) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    # varied image sizes: a slot holds samples of any shape up to its capacity
    return make_synthetic_dataset(tmp_path_factory.mktemp("synth"), n_train=9, n_val=2, seed=5)


def _source(synth, **extra):
    params = {"sbdd_dir": str(synth.sbdd_dir), "split": "train", "mean": MEAN, "seed": 1337,
              "randomize": True, **extra}
    return make_data_source("voc_layers", "SBDDSegDataLayer", params)


# -- the ring itself --------------------------------------------------------------------------
def test_a_slot_gives_back_what_was_written_and_knows_when_it_was_reused():
    ring = SlotRing(workers=2, slots=3, capacity=1 << 16)
    rng = np.random.default_rng(0)
    arrays = [rng.integers(0, 256, (1, 7, 9), dtype=np.uint8), rng.normal(size=(3, 256)).astype(np.float32),
              rng.normal(size=(2, 5)).astype(np.float64)]
    ref = ring.write(1, 4, arrays)
    assert (ref.worker, ref.slot, ref.count) == (1, 4 % 3, 4)
    views = ring.views(ref)
    assert all(_exact(a, v) for a, v in zip(arrays, views)) and not views[0].flags.writeable
    assert all(v.ctypes.data % 64 == 0 for v in views)
    other = ring.write(0, 4, [np.zeros(3, np.uint8)])   # another worker's ring: untouched
    ring.check(ref)
    assert _exact(ring.views(ref)[2], arrays[2]) and ring.views(other)[0].tolist() == [0, 0, 0]
    ring.write(1, 7, [np.ones(5, np.uint8)])            # 7 mod 3 == 4 mod 3: the slot is reused
    with pytest.raises(SlotOverwritten, match="worker 1's shared slot 1 holds sample 7, not 4"):
        ring.check(ref)
    with pytest.raises(SlotOverwritten):
        ring.views(ref)


def test_what_does_not_fit_a_slot_is_not_written_and_a_ring_is_not_pickled():
    ring = SlotRing(workers=1, slots=2, capacity=4096)
    assert ring.write(0, 0, [np.zeros(4096, np.uint8)]) is None   # header + 4096 > 4096
    assert ring.write(0, 0, [np.zeros(4096 - 64, np.uint8)]) is not None
    with pytest.raises(TypeError, match="by fork only"):
        pickle.dumps(ring)
    with pytest.raises(ValueError, match="slots >= 2"):
        SlotRing(workers=1, slots=1, capacity=4096)


# -- through a DataLoader ---------------------------------------------------------------------
@linux_only
@pytest.mark.parametrize("workers", [1, 2])
def test_workers_through_slots_give_the_sources_own_samples_in_order(synth, workers):
    plain, other = _source(synth), _source(synth)
    loader = torch_loader.make_dataloader(other, 12, num_workers=workers, prefetch_factor=2)
    assert loader.slots == 2 * workers + 1
    shapes = set()
    for data, label in loader:   # more samples than slots: every slot is reused
        expected_data, expected_label = plain.next()
        assert _exact(data.numpy(), expected_data) and _exact(label.numpy(), expected_label)
        assert data.dtype == torch.float32 and len(np.unique(data.numpy())) > 10
        shapes.add(tuple(data.shape))
    assert len(shapes) > 1   # varied sizes went through the same slots
    assert other.state_dict() == plain.state_dict()


@linux_only
def test_a_sample_larger_than_a_slot_goes_through_the_pipe(synth, monkeypatch):
    monkeypatch.setattr(torch_loader, "SLOT_BYTES", 4096)   # no sample fits
    plain, other = _source(synth), _source(synth)
    for data, label in torch_loader.make_dataloader(other, 4, num_workers=2):
        expected_data, expected_label = plain.next()
        assert _exact(data.numpy(), expected_data) and _exact(label.numpy(), expected_label)


def test_the_pipe_and_the_process_itself_give_the_same_samples(synth):
    plain, other = _source(synth), _source(synth)
    for data, label in torch_loader.make_dataloader(other, 3, num_workers=1, shared_slots=False):
        expected_data, expected_label = plain.next()
        assert _exact(data.numpy(), expected_data) and _exact(label.numpy(), expected_label)
    for data, label in torch_loader.make_dataloader(other, 2, num_workers=0):
        expected_data, expected_label = plain.next()
        assert _exact(data.numpy(), expected_data) and _exact(label.numpy(), expected_label)


@pytest.mark.parametrize("workers, slots", [(0, True), (2, True), (1, False)])
def test_an_augmented_source_is_augmented_through_the_dataloader(synth, workers, slots):
    """Mirroring and jittering are drawn in the main process in the source's order and applied
    by the workers: the samples and the source's state (order and augmentation stream) are the
    source's own."""
    if workers and slots and not sys.platform.startswith("linux"):
        pytest.skip("shared slots travel to workers by fork (Linux)")
    plain, other = _source(synth, mirror=True, jitter=6), _source(synth, mirror=True, jitter=6)
    moved = 0
    for data, label in torch_loader.make_dataloader(other, 10, num_workers=workers, shared_slots=slots):
        expected_data, expected_label = plain.next()
        assert _exact(data.numpy(), expected_data) and _exact(label.numpy(), expected_label)
        moved += int((label.numpy() == 255).any())
    assert moved > 0   # the jitter's void border reached the labels
    assert other.state_dict() == plain.state_dict()


@linux_only
def test_a_ring_too_small_for_the_samples_in_flight_is_caught_not_read(synth):
    """The bound is checked: with 2 slots for 4 samples in flight, a worker overwrites a slot
    before the (slow) consumer reads it, and the consumer raises instead of returning it."""
    import time

    loader = torch_loader.make_dataloader(_source(synth), 8, num_workers=1, prefetch_factor=4)
    loader.slots = 2
    with pytest.raises(SlotOverwritten, match="reused before it was read"):
        for _ in loader:
            time.sleep(0.3)   # the worker runs ahead into the slots still to be read


@linux_only
def test_no_room_for_the_slots_warns_and_uses_the_pipe(synth, monkeypatch):
    from reproduce.data import shared_slots

    def refuse(*args):
        raise OSError(12, "Cannot allocate memory")

    monkeypatch.setattr(shared_slots, "SlotRing", refuse)
    plain, other = _source(synth), _source(synth)
    loader = torch_loader.make_dataloader(other, 3, num_workers=1)
    with pytest.warns(RuntimeWarning, match="no shared slots .*Cannot allocate memory"):
        for data, label in loader:
            expected_data, expected_label = plain.next()
            assert _exact(data.numpy(), expected_data) and _exact(label.numpy(), expected_label)


@linux_only
def test_the_device_route_takes_copies_out_of_the_slots(synth):
    """Off the CPU the picture and its table are copied out of the slot and gathered where they
    are sent ("meta" here: shapes and dtypes only; the gather's values are tested on the CPU in
    test_data_fast_paths.py)."""
    plain, other = _source(synth), _source(synth)
    for data, label in torch_loader.make_dataloader(other, 6, num_workers=2, device="meta"):
        expected_data, expected_label = plain.next()
        assert data.device.type == label.device.type == "meta"
        assert (data.dtype, tuple(data.shape)) == (torch.float32, expected_data.shape)
        assert (label.dtype, tuple(label.shape)) == (torch.uint8, expected_label.shape)


@linux_only
@pytest.mark.parametrize("dataset", ["nyud", "siftflow"])
def test_every_top_of_the_other_datasets_crosses_the_slots_exactly(tmp_path, dataset):
    """NYUDv2's color, depth (float32), HHA and label; SIFT Flow's image and its two label maps:
    images deferred or not, arrays of any dtype, several per sample."""
    from reproduce.data.synthetic_layouts import make_synthetic_nyud, make_synthetic_siftflow

    if dataset == "nyud":
        make_synthetic_nyud(tmp_path, n_trainval=5, n_test=1)
        module, layer = "nyud_layers", "NYUDSegDataLayer"
        params = {"nyud_dir": str(tmp_path / "nyud"), "tops": ["color", "depth", "hha", "label"]}
    else:
        make_synthetic_siftflow(tmp_path, n_trainval=5, n_test=1)
        module, layer = "siftflow_layers", "SIFTFlowSegDataLayer"
        params = {"siftflow_dir": str(tmp_path / "sift-flow")}
    params.update(split="trainval", seed=1337, randomize=True)
    plain, other = make_data_source(module, layer, params), make_data_source(module, layer, params)
    dtypes = set()
    for tops in torch_loader.make_dataloader(other, 7, num_workers=2):
        expected = plain.next()
        assert len(tops) == len(expected) == len(plain.tops)
        assert all(_exact(top.numpy(), want) for top, want in zip(tops, expected))
        dtypes |= {str(want.dtype) for want in expected}
    assert "float32" in dtypes and len(dtypes) > 1
    assert other.state_dict() == plain.state_dict()


def test_a_start_method_the_program_chose_is_kept_and_the_pipe_used(synth, monkeypatch):
    import multiprocessing

    monkeypatch.setattr(multiprocessing, "get_start_method", lambda allow_none=False: "spawn")
    loader = torch_loader.make_dataloader(_source(synth), 2, num_workers=1)
    assert loader.slots == 0 and loader.loader.multiprocessing_context is None
    monkeypatch.setattr(multiprocessing, "get_start_method", lambda allow_none=False: None)
    loader = torch_loader.make_dataloader(_source(synth), 2, num_workers=1)
    assert (loader.slots > 0) == sys.platform.startswith("linux")
