"""The reference sample order of the fcn.berkeleyvision.org data layers.

Every reference data layer (``voc_layers``, ``siftflow_layers``, ``nyud_layers``,
``pascalcontext_layers``) orders its samples the same way:

* a split whose name does not contain ``'train'`` is never randomized (eval is deterministic);
* randomized: ``random.seed(seed)`` at setup and ``idx = random.randint(0, n - 1)``, then after
  every sample another ``random.randint(0, n - 1)`` — sampling *with replacement*;
* otherwise: ``0, 1, …, n - 1`` and around again.

The reference draws from the *global* ``random`` module; here a private ``random.Random(seed)``
draws the same Mersenne Twister stream without sharing state.

Surprise: the reference is Python 2 code (``print '>>>'`` in score.py), and Python 2's
``randint(0, n - 1)`` is ``int(random() * n)`` while Python 3's draws ``getrandbits`` with
rejection — same seed, same generator, different indices. ``flavor="python2"`` (the default)
gives the order the published models were trained with; ``flavor="python3"`` gives what the
same layer code yields under Python 3. The seeding of an int is identical in both.

The state (position and generator state) is a plain JSON-able dict for bit-exact resume.
"""
from __future__ import annotations

import random

FLAVORS = ("python2", "python3")
DEFAULT_FLAVOR = "python2"


class ReferenceSampler:
    """Yields sample indices in the reference order; ``next()`` returns the index to load now."""

    def __init__(self, n: int, randomize: bool = True, seed=None, split: str | None = None,
                 flavor: str = DEFAULT_FLAVOR):
        if n < 1:
            raise ValueError(f"cannot sample from an empty split (n={n})")
        if flavor not in FLAVORS:
            raise ValueError(f"sampler flavor must be one of {FLAVORS}, got {flavor!r}")
        self.n = int(n)
        self.flavor = flavor
        # the reference's rule: "make eval deterministic"
        self.randomize = bool(randomize) and (split is None or "train" in split)
        self.seed = seed
        self._random = random.Random(seed) if self.randomize else None
        self.position = self._randint() if self.randomize else 0

    def _randint(self) -> int:
        """``random.randint(0, n - 1)`` as the chosen Python version computes it."""
        if self.flavor == "python2":
            # Python 2.7 randrange for widths below 2**53: int(istart + int(self.random() * width))
            return int(self._random.random() * self.n)
        return self._random.randint(0, self.n - 1)

    def peek(self) -> int:
        """The index the next call to ``next()`` returns."""
        return self.position

    def next(self) -> int:
        current = self.position
        if self.randomize:
            self.position = self._randint()
        else:
            self.position = (self.position + 1) % self.n
        return current

    __next__ = next

    def __iter__(self):
        return self

    def take(self, count: int) -> list[int]:
        return [self.next() for _ in range(count)]

    def state_dict(self) -> dict:
        """JSON-able state: position and, when randomized, the generator's state as ints."""
        state = {"n": self.n, "randomize": self.randomize, "flavor": self.flavor, "position": self.position}
        if self.randomize:
            version, internal, gauss_next = self._random.getstate()
            state["random_state"] = [version, list(internal), gauss_next]
        return state

    def load_state_dict(self, state: dict) -> None:
        fits = (int(state["n"]) == self.n and bool(state["randomize"]) == self.randomize
                and state.get("flavor", self.flavor) == self.flavor)
        if not fits:
            raise ValueError(f"sampler state for n={state['n']}, randomize={state['randomize']}, "
                             f"flavor={state.get('flavor')} does not fit this sampler "
                             f"(n={self.n}, randomize={self.randomize}, flavor={self.flavor})")
        position = int(state["position"])
        if not 0 <= position < self.n:
            raise ValueError(f"sampler state position {position} is outside [0, {self.n})")
        if self.randomize:
            version, internal, gauss_next = state["random_state"]
            self._random.setstate((int(version), tuple(int(v) for v in internal), gauss_next))
        self.position = position

    def __repr__(self) -> str:
        return (f"ReferenceSampler(n={self.n}, randomize={self.randomize}, seed={self.seed!r}, "
                f"flavor={self.flavor!r}, position={self.position})")
