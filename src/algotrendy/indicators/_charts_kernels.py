"""numba kernels behind ``charts``: one pass over the source closes each, no Python loops.

Every path kernel reads the *close* path (the close method) and returns, per derived bar,
the index of the source bar that completed it, its open and close price, its volume and its
direction (+1 up, -1 down). Kernels that take ``cap`` (the output size the caller
allocated) return a count of -1 instead of writing past it. Volume rule: the volume
accumulated since the previous derived bar (that bar's source bar excluded) is split equally
among the derived bars completed by the current source bar. Renko and point & figure work on
an integer grid of levels ``anchor + k * size`` (anchor = first close) so bricks and boxes do
not drift.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from algotrendy.core.market import F64, I64

I8 = npt.NDArray[np.int8]
B8 = npt.NDArray[np.bool_]
# (count, source index, open, close, volume, direction)
PathOut = tuple[int, I64, F64, F64, F64, I8]

_EPS = 1e-9  # tolerance, in units of the brick/box size, for float rounding of levels


def _jit(fn: Callable[..., Any]) -> Callable[..., Any]:
    jitted: Callable[..., Any] = numba.njit(cache=False, nogil=True)(fn)
    return jitted


def _heikin_ashi(o: F64, h: F64, lo: F64, c: F64) -> tuple[F64, F64, F64, F64]:
    n = len(c)
    ho = np.empty(n)
    hh = np.empty(n)
    hl = np.empty(n)
    hc = (o + h + lo + c) / 4.0
    for i in range(n):
        ho[i] = (o[0] + c[0]) / 2.0 if i == 0 else (ho[i - 1] + hc[i - 1]) / 2.0
        hh[i] = max(h[i], ho[i], hc[i])
        hl[i] = min(lo[i], ho[i], hc[i])
    return ho, hh, hl, hc


def _renko(c: F64, v: F64, box: float, cap: int) -> PathOut:
    src = np.empty(cap, np.int64)
    op = np.empty(cap)
    cl = np.empty(cap)
    vol = np.empty(cap)
    dr = np.empty(cap, np.int8)
    p0 = c[0]
    top = 0  # the last brick spans levels [bottom, top]; before the first brick both are 0
    bottom = 0
    m = 0
    acc = 0.0
    for i in range(len(c)):
        acc += v[i]
        x = (c[i] - p0) / box
        up = math.floor(x + _EPS)
        down = math.ceil(x - _EPS)
        first = m
        if max(up - top, bottom - down) > cap - m:
            return -1, src, op, cl, vol, dr  # more bricks than the caller allowed for
        if up >= top + 1:
            for k in range(top, up):
                src[m], op[m], cl[m], dr[m] = i, p0 + k * box, p0 + (k + 1) * box, 1
                m += 1
            top, bottom = up, up - 1
        elif down <= bottom - 1:
            for k in range(bottom, down, -1):
                src[m], op[m], cl[m], dr[m] = i, p0 + k * box, p0 + (k - 1) * box, -1
                m += 1
            top, bottom = down + 1, down
        if m > first:
            share = acc / (m - first)
            for j in range(first, m):
                vol[j] = share
            acc = 0.0
    return m, src, op, cl, vol, dr


def _range_bars(c: F64, v: F64, size: float, cap: int) -> tuple[int, I64, F64, F64, F64, F64, F64]:
    src = np.empty(cap, np.int64)
    op = np.empty(cap)
    hi_out = np.empty(cap)
    lo_out = np.empty(cap)
    cl = np.empty(cap)
    vol = np.empty(cap)
    tol = size * _EPS
    o = hi = lo = c[0]
    m = 0
    acc = 0.0
    for i in range(len(c)):
        acc += v[i]
        first = m
        x = c[i]
        while True:
            if m == cap:  # more bars than the caller allowed for (or a size below float resolution)
                return -1, src, op, hi_out, lo_out, cl, vol
            if x - lo >= size - tol:  # up: the bar closes at its low + size
                src[m], op[m], lo_out[m], hi_out[m] = i, o, lo, lo + size
                cl[m] = lo + size
            elif hi - x >= size - tol:  # down: closes at its high - size
                src[m], op[m], hi_out[m], lo_out[m] = i, o, hi, hi - size
                cl[m] = hi - size
            else:
                hi = max(hi, x)
                lo = min(lo, x)
                break
            o = hi = lo = cl[m]
            m += 1
        if m > first:
            share = acc / (m - first)
            for j in range(first, m):
                vol[j] = share
            acc = 0.0
    return m, src, op, hi_out, lo_out, cl, vol


def _three_line_break(c: F64, v: F64, lines: int) -> PathOut:
    n = len(c)
    src = np.empty(n, np.int64)
    op = np.empty(n)
    cl = np.empty(n)
    vol = np.empty(n)
    dr = np.empty(n, np.int8)
    m = 0
    acc = 0.0
    for i in range(n):
        acc += v[i]
        x = c[i]
        new_open = math.nan
        if m == 0:
            if x != c[0]:
                new_open = c[0]
        else:
            last_open, last_close = op[m - 1], cl[m - 1]
            hi = -math.inf
            lo = math.inf
            for j in range(max(0, m - lines), m):
                hi = max(hi, op[j], cl[j])
                lo = min(lo, op[j], cl[j])
            if dr[m - 1] == 1:
                if x > last_close:
                    new_open = last_close
                elif x < lo:
                    new_open = last_open
            elif x < last_close:
                new_open = last_close
            elif x > hi:
                new_open = last_open
        if not math.isnan(new_open):
            src[m], op[m], cl[m], vol[m] = i, new_open, x, acc
            dr[m] = 1 if x > new_open else -1
            m += 1
            acc = 0.0
    return m, src, op, cl, vol, dr


def _kagi(c: F64, v: F64, amount: float, percent: bool) -> tuple[int, I64, F64, F64, F64, I8, B8]:
    n = len(c)
    src = np.empty(n, np.int64)
    op = np.empty(n)
    cl = np.empty(n)
    vol = np.empty(n)
    dr = np.empty(n, np.int8)
    yang = np.empty(n, np.bool_)
    start = ext = c[0]
    direction = 0
    thick = False
    shoulder = math.nan  # end of the last up line
    waist = math.nan  # end of the last down line
    m = 0
    acc = 0.0
    for i in range(n):
        acc += v[i]
        x = c[i]
        rev = ext * amount / 100.0 if percent else amount
        if direction == 0:
            if x - start >= rev:
                direction, ext, thick = 1, x, True
            elif start - x >= rev:
                direction, ext, thick = -1, x, False
        elif direction * (x - ext) > 0:
            ext = x
        elif direction * (ext - x) >= rev:
            if direction == 1:
                thick = thick or (not math.isnan(shoulder) and ext > shoulder)
                shoulder = ext
            else:
                thick = thick and not (not math.isnan(waist) and ext < waist)
                waist = ext
            src[m], op[m], cl[m], vol[m], dr[m], yang[m] = i, start, ext, acc, direction, thick
            m += 1
            acc = 0.0
            start, ext, direction = ext, x, -direction
    return m, src, op, cl, vol, dr, yang


def _point_figure(c: F64, v: F64, box: float, reversal: int) -> tuple[int, I64, F64, F64, F64, I8, I64]:
    n = len(c)
    src = np.empty(n, np.int64)
    op = np.empty(n)
    cl = np.empty(n)
    vol = np.empty(n)
    dr = np.empty(n, np.int8)
    boxes = np.empty(n, np.int64)
    p0 = c[0]
    start = ext = 0  # levels: the column runs from level ``start`` to its extreme ``ext``
    direction = 0
    m = 0
    acc = 0.0
    for i in range(n):
        acc += v[i]
        x = (c[i] - p0) / box
        up = math.floor(x + _EPS)
        down = math.ceil(x - _EPS)
        if direction == 0:
            if up >= 1:
                direction, ext = 1, up
            elif down <= -1:
                direction, ext = -1, down
        elif direction == 1 and up > ext:
            ext = up
        elif direction == -1 and down < ext:
            ext = down
        elif (direction == 1 and down <= ext - reversal) or (direction == -1 and up >= ext + reversal):
            src[m], op[m], cl[m], vol[m], dr[m] = i, p0 + start * box, p0 + ext * box, acc, direction
            boxes[m] = abs(ext - start)
            m += 1
            acc = 0.0
            start, ext, direction = ext, (down if direction == 1 else up), -direction
    return m, src, op, cl, vol, dr, boxes


heikin_ashi_kernel = _jit(_heikin_ashi)
renko_kernel = _jit(_renko)
range_kernel = _jit(_range_bars)
three_line_break_kernel = _jit(_three_line_break)
kagi_kernel = _jit(_kagi)
point_figure_kernel = _jit(_point_figure)
