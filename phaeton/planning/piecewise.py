"""Convex piecewise-linear functions of one variable on a closed interval.

A function is stored as its left end `x0`, its value there `y0`, and segments with positive
`lengths` and non-decreasing `slopes`. In that form the infimal convolution the planner's DP
needs (min over y of f(y) + g(x - y)) is exact and cheap: it starts at x0_f + x0_g with value
y0_f + y0_g and has the segments of both, sorted by slope (see value_dp.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EMPTY = np.zeros(0)


@dataclass
class ConvexPL:
    x0: float
    y0: float
    lengths: np.ndarray
    slopes: np.ndarray

    @property
    def x_end(self) -> float:
        return self.x0 + float(self.lengths.sum())

    def knots(self) -> tuple[np.ndarray, np.ndarray]:
        """Breakpoint abscissae and values (both length segments + 1)."""
        xs = np.empty(len(self.lengths) + 1)
        ys = np.empty(len(self.lengths) + 1)
        xs[0] = 0.0
        ys[0] = 0.0
        np.cumsum(self.lengths, out=xs[1:])
        np.cumsum(self.lengths * self.slopes, out=ys[1:])
        return xs + self.x0, ys + self.y0

    def __call__(self, x):
        xs, ys = self.knots()
        return np.interp(x, xs, ys)


def convex_hull(f_x0: float, f_y0: float, lengths: np.ndarray, slopes: np.ndarray) -> ConvexPL:
    """Lower convex envelope of a piecewise-linear function given by possibly unsorted slopes.

    Pools neighbouring segments whose slopes decrease (length-weighted mean slope) until the
    slopes are non-decreasing; the end points and total rise are unchanged.
    """
    out_len: list[float] = []
    out_rise: list[float] = []
    for length, slope in zip(lengths.tolist(), slopes.tolist()):
        out_len.append(length)
        out_rise.append(length * slope)
        while len(out_len) > 1 and out_rise[-2] / out_len[-2] > out_rise[-1] / out_len[-1]:
            length_last, rise_last = out_len.pop(), out_rise.pop()
            out_len[-1] += length_last
            out_rise[-1] += rise_last
    lengths_arr = np.array(out_len)
    slopes_arr = np.array(out_rise) / lengths_arr if out_len else _EMPTY
    return ConvexPL(f_x0, f_y0, lengths_arr, slopes_arr)
