"""``Blob``: pycaffe's ``caffe._caffe.Blob`` over the tensors a net computes on.

What it mirrors of Caffe's ``Blob`` as pycaffe exposes it (``_caffe.cpp``):

* ``data`` and ``diff`` are float32 numpy arrays of the blob's shape. On the CPU they *are*
  the tensors' memory (``tensor.numpy()``, no copy): ``blob.data[...] = x`` writes what the
  next forward reads, ``net.params[l][0].data.flat = w`` writes the weight the net computes
  with. A tensor held channels-last inside the net is made contiguous the first time its
  array is asked for, so every array is C-ordered as Caffe's are (the blobs sharing it, a
  split's bottom and tops, take the contiguous tensor too: they stay one memory);
* on another device (CUDA) they are host copies, as Caffe's ``mutable_cpu_data`` is: the copy
  is taken when asked for and written back to the device before the next computation
  (``push_host_copies``, which every ``Net``/``Solver`` call makes first); an array kept from
  before a call is not written back — ask ``blob.data`` again, which is also how Caffe's
  synced memory behaves once the device has computed;
* ``reshape(*shape)`` (ints, or one sequence), ``shape`` (a tuple), ``count``, ``num_axes``,
  and the legacy ``num``/``channels``/``height``/``width`` (1 past the blob's axes; refused
  beyond 4 axes, as Caffe's ``LegacyShape``). A reshape to another shape gives zeroed memory;
* a diff never written is zeros (Caffe allocates it with the data).

``ParamBlob`` is the view of one parameter blob of a layer (its ``nn.Parameter``, looked up on
every access so that ``share_with`` is seen); its ``diff`` is the parameter's ``.grad``, which
it creates (zeros) when there is none, as Caffe's diff always exists. ``BlobVec`` is a layer's
blob list; a Python layer's has ``add_blob(*shape)``.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Iterable

import numpy as np
import torch

_HOST_COPIES: dict[int, "Blob"] = {}   # blobs whose host arrays may hold writes for a device


def push_host_copies() -> None:
    """Write every host copy taken since the last call back to its device tensor (see the
    module docstring); afterwards a host array is taken afresh when asked for."""
    if not _HOST_COPIES:
        return
    blobs = list(_HOST_COPIES.values())
    _HOST_COPIES.clear()
    with torch.no_grad():
        for blob in blobs:
            blob._push()


def _shape_args(shape: tuple) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], (tuple, list, torch.Size, np.ndarray)):
        shape = tuple(shape[0])
    try:
        dims = tuple(int(d) for d in shape)
    except (TypeError, ValueError):
        raise TypeError(f"Blob.reshape takes integer dimensions, got {shape!r}") from None
    if any(d < 0 for d in dims):
        raise ValueError(f"Blob.reshape: negative dimension in {dims}")
    return dims


class Blob:
    """A net's blob (see the module docstring)."""

    # tests set this to exercise the host-copy path on the CPU
    always_copy = False

    def __init__(self, tensor: torch.Tensor | None = None, name: str = ""):
        self.name = name
        self._t = tensor if tensor is not None else torch.zeros(0)
        self._g: torch.Tensor | None = None
        self._host: dict[str, np.ndarray] = {}
        # blobs sharing this one's data (a split's bottom and tops: SplitLayer's ShareData),
        # which follow it when its tensor is replaced by a contiguous copy
        self._sharing: list["Blob"] | None = None

    # -- the tensors -----------------------------------------------------------------
    def _tensor(self) -> torch.Tensor:
        return self._t

    def _set_tensor(self, value: torch.Tensor) -> None:
        self._t = value
        self._host.pop("data", None)

    def _diff_tensor(self, create: bool = True) -> torch.Tensor | None:
        t = self._tensor()
        g = self._g
        if g is None or g.shape != t.shape or g.device != t.device:
            if not create:
                return None
            g = self._g = torch.zeros(t.shape, dtype=torch.float32, device=t.device)
        return g

    def _set_diff(self, value: torch.Tensor | None) -> None:
        self._g = value
        self._host.pop("diff", None)

    # -- arrays ------------------------------------------------------------------------
    def _array(self, which: str) -> np.ndarray:
        t = self._tensor() if which == "data" else self._diff_tensor()
        if t.device.type == "cpu" and not Blob.always_copy:
            if not t.is_contiguous():
                t = self._contiguous(which, t)
            return t.detach().numpy()
        host = self._host.get(which)
        if host is None or host.shape != tuple(t.shape):
            host = self._host[which] = t.detach().cpu().numpy().copy()
        _HOST_COPIES[id(self)] = self
        return host

    def _contiguous(self, which: str, t: torch.Tensor) -> torch.Tensor:
        old, t = t, t.contiguous()
        if which == "data":
            for blob in self._sharing or (self,):
                if blob._t is old:
                    blob._set_tensor(t)
        else:
            self._set_diff(t)
        return t

    def _push(self) -> None:
        for which, host in list(self._host.items()):
            t = self._tensor() if which == "data" else self._diff_tensor()
            if tuple(t.shape) == host.shape:
                t.detach().copy_(torch.from_numpy(host))
        self._host.clear()

    @property
    def data(self) -> np.ndarray:
        """The blob's data as a float32 array (the tensor's memory on the CPU)."""
        return self._array("data")

    @property
    def diff(self) -> np.ndarray:
        """The blob's diff (gradient) as a float32 array (zeros until something writes it)."""
        return self._array("diff")

    # -- shape -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._tensor().shape)

    @property
    def num_axes(self) -> int:
        return self._tensor().dim()

    @property
    def count(self) -> int:
        return math.prod(self.shape)

    def _legacy(self, index: int) -> int:
        shape = self.shape
        if len(shape) > 4:
            raise ValueError(f"blob {self.name!r} has {len(shape)} axes {shape}; the legacy "
                             f"accessors num/channels/height/width need at most 4 (Caffe's "
                             f"LegacyShape)")
        return shape[index] if index < len(shape) else 1

    num = property(lambda self: self._legacy(0))
    channels = property(lambda self: self._legacy(1))
    height = property(lambda self: self._legacy(2))
    width = property(lambda self: self._legacy(3))

    def reshape(self, *shape: Any) -> None:
        """Caffe's ``Blob::Reshape``: a new shape (zeroed memory when it changes)."""
        dims = _shape_args(shape)
        t = self._tensor()
        if tuple(t.shape) == dims:
            return
        self._replace(torch.zeros(dims, dtype=torch.float32, device=t.device))

    def _replace(self, tensor: torch.Tensor) -> None:
        self._set_tensor(tensor)
        self._set_diff(None)

    def __repr__(self) -> str:
        return f"<caffe Blob {self.name!r} {self.shape}>"


class ParamBlob(Blob):
    """One parameter blob of a layer module: blob ``index`` as ``get`` finds it now."""

    def __init__(self, get: Callable[[], torch.nn.Parameter], name: str = ""):
        self.name = name
        self._get = get
        self._g = None
        self._host = {}

    def _tensor(self) -> torch.Tensor:
        return self._get()

    def _set_tensor(self, value: torch.Tensor) -> None:
        with torch.no_grad():
            self._get().data = value
        self._host.pop("data", None)

    def _diff_tensor(self, create: bool = True) -> torch.Tensor | None:
        param = self._get()
        g = param.grad
        if g is None or g.shape != param.shape:
            if not create:
                return None
            g = param.grad = torch.zeros_like(param, memory_format=torch.contiguous_format)
        return g

    def _set_diff(self, value: torch.Tensor | None) -> None:
        self._get().grad = value
        self._host.pop("diff", None)


class BlobVec(list):
    """A layer's parameter blobs (pycaffe's ``BlobVec``); ``add_blob`` for Python layers."""

    def __init__(self, blobs: Iterable[Blob] = (), add: Callable[[tuple], Blob] | None = None):
        super().__init__(blobs)
        self._add = add

    def add_blob(self, *shape: Any) -> None:
        """Append a zero-filled parameter blob of ``shape`` (Python layers, in ``setup``)."""
        if self._add is None:
            raise RuntimeError("add_blob is for the blobs of a Python layer, in its setup")
        self.append(self._add(_shape_args(shape)))
