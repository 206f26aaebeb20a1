"""A bounded (time, value) series, the analyzer's and the census's history of one quantity."""

from __future__ import annotations

from array import array


class Series:
    """A bounded (t, y) series with history thinning.

    Stored as C doubles (8 bytes a point, not a 32-byte float object and its pointer): with
    `max_paths` x 2 series x `max_points`, lists held ~4 MB at full tables, arrays ~1 MB."""

    __slots__ = ("capacity", "times", "values")

    def __init__(self, capacity: int) -> None:
        self.times = array("d")
        self.values = array("d")
        self.capacity = capacity

    def append(self, t: float, y: float) -> None:
        self.times.append(t)
        self.values.append(y)
        if len(self.times) > self.capacity:
            half = len(self.times) // 2
            self.times[:half] = self.times[:half:2]
            self.values[:half] = self.values[:half:2]

    def __len__(self) -> int:
        return len(self.times)

    @property
    def last(self) -> float:
        return self.values[-1] if self.values else 0.0
