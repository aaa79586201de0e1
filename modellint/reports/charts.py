"""Hand-made SVG charts for the HTML report: no JavaScript, no network, no plotting library.

Every function takes plain numbers and labels and returns :class:`markupsafe.Markup`
holding one ``<svg>`` element (or an empty Markup when there is nothing to draw).
**Every piece of text that reaches the SVG goes through** :func:`_e` (HTML/XML
escaping), so a layer named ``<script>`` is drawn as text. Numbers are formatted
with a fixed precision, so the same data always gives the same bytes.

Colours and line styles come from CSS classes (``s0``, ``s1``, ``hit``, ``ref`` ...)
defined in ``templates/report.css``; the SVG itself carries geometry only.

Functions:

* :func:`rf_box` — the receptive field drawn to scale inside the input (header).
* :func:`rf_growth` — receptive-field size per layer against the input size.
* :func:`bars` — horizontal bars, one row per layer, one or more value columns
  (linear or log scale, optional reference line); params/MACs, gradient norms,
  update ratios, dead fractions, spectral α with its healthy band shaded.
* :func:`columns` — compact per-layer columns by layer index, for models too large for
  one labelled row per layer.
* :func:`line_chart` — lines on linear or log axes with marked x positions
  (learning-rate range test, loss curves, data-scaling curve).
* :func:`graph_diagram` — the layer graph as a layered (topological-depth) diagram,
  with long edges routed on lanes to the right; layers with findings marked.
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

from markupsafe import Markup, escape

CHAR_W = 6.6  # width of one 11 px character (digits and lower case measured at 6-6.6 px in Chromium)
SMALL_W = 6.2  # width of one 10 px character (class "small"), the same way
MIN_LABEL_GAP = 28.0  # px between the centres of neighbouring x labels; denser labels are thinned


def _e(text) -> str:
    return str(escape(str(text)))


def _n(x: float) -> str:
    """A coordinate: at most one decimal, no trailing zeros (stable bytes)."""
    s = f"{x:.1f}"
    return s[:-2] if s.endswith(".0") else s


def _fit(text: str, width_px: float, char_w: float = CHAR_W) -> str:
    n = max(1, int(width_px / char_w))
    text = str(text)
    return text if len(text) <= n else text[: max(n - 1, 1)] + "…"


def _fit_mid(text: str, n: int) -> str:
    """``text`` cut to ``n`` characters in the middle (layer names differ at their ends: ``conv2d_1``)."""
    text = str(text)
    if len(text) <= n:
        return text
    if n <= 3:
        return text[: max(n - 1, 1)] + "…"
    tail = (n - 1) // 2
    return text[: n - 1 - tail] + "…" + text[len(text) - tail:]


def _decade_below(v: float) -> float:
    """The power of ten below ``v`` (strictly below, so the smallest log-scale bar keeps a length)."""
    return 10.0 ** math.floor(math.log10(v) - 1e-9)


# -- labels that keep clear of each other ------------------------------------------------

def _seg_hits(box, p, q) -> bool:
    """Whether the segment p-q crosses the box (x0, y0, x1, y1) (Liang-Barsky clipping)."""
    x0, y0, x1, y1 = box
    (ax, ay), (bx, by) = p, q
    dx, dy = bx - ax, by - ay
    t0, t1 = 0.0, 1.0
    for pp, qq in ((-dx, ax - x0), (dx, x1 - ax), (-dy, ay - y0), (dy, y1 - ay)):
        if pp == 0:
            if qq < 0:
                return False
            continue
        t = qq / pp
        if pp < 0:
            if t > t1:
                return False
            t0 = max(t0, t)
        else:
            if t < t0:
                return False
            t1 = min(t1, t)
    return t0 <= t1


class _Labels:
    """A greedy label placer: each label takes the first candidate position whose box is clear
    of the labels placed before it (and, at a lower weight, of the lines to keep clear); when
    none is, the candidate with the fewest collisions. Deterministic: same input, same places."""

    PAD = 2.0

    def __init__(self, bounds):
        self.bounds = bounds  # (x0, y0, x1, y1): a label box must stay inside
        self.boxes: list = []
        self.lines: list = []  # [[(p, q), ...] per line]

    @staticmethod
    def box(x: float, y: float, text: str, anchor: str = "start", char_w: float = SMALL_W) -> tuple:
        """The box of 10 px text with its baseline at y."""
        w = len(str(text)) * char_w
        x0 = x - w if anchor == "end" else x - w / 2 if anchor == "middle" else x
        return (x0, y - 8.0, x0 + w, y + 2.5)

    def take(self, box) -> None:
        self.boxes.append(box)

    def line(self, pts) -> None:
        if len(pts) > 1:
            self.lines.append(list(zip(pts, pts[1:])))

    def cost(self, b) -> float:
        p = self.PAD
        c = 10.0 * sum(1 for o in self.boxes
                       if b[0] < o[2] + p and o[0] < b[2] + p and b[1] < o[3] + p and o[1] < b[3] + p)
        padded = (b[0] - p, b[1] - p, b[2] + p, b[3] + p)
        c += 3.0 * sum(1 for segs in self.lines if any(_seg_hits(padded, s, e) for s, e in segs))
        x0, y0, x1, y1 = self.bounds
        if b[0] < x0 or b[2] > x1 or b[1] < y0 or b[3] > y1:
            c += 100.0
        return c

    def place(self, text: str, candidates) -> tuple:
        """``candidates``: [(x, y, anchor)]; returns the chosen one and takes its box."""
        best, best_cost = None, None
        for x, y, anchor in candidates:
            b = self.box(x, y, text, anchor)
            c = self.cost(b)
            if best_cost is None or c < best_cost:
                best, best_cost = (x, y, anchor, b), c
            if c == 0:
                break
        self.take(best[3])
        return best[:3]


def _anchor_attr(anchor: str) -> str:
    return "" if anchor == "start" else f' text-anchor="{anchor}"'


def _hline_candidates(y: float, left: float, pw: float, top: float, ph: float) -> list:
    """Label positions for a horizontal line at y: right end above / below, left end, middle."""
    above, below = y - 4, y + 12
    out = []
    for x, anchor in ((left + pw - 4, "end"), (left + 6, "start"), (left + pw / 2, "middle")):
        for ty in (above, below):
            if top + 9 <= ty <= top + ph - 3:
                out.append((x, ty, anchor))
    return out or [(left + pw - 4, above, "end")]


def fmt(v: Optional[float]) -> str:
    """Compact number for axis ticks and labels: 1.2 M, 3e-4, 0.25."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return str(v)
    a = abs(v)
    if a == 0:
        return "0"
    for div, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{v / div:.3g}{suffix}"
    if a < 1e-2:
        return f"{v:.0e}".replace("e-0", "e-")
    return f"{v:.3g}"


def _svg(width: float, height: float, body: list, label: str, cls: str = "chart") -> Markup:
    return Markup(f'<svg class="{cls}" viewBox="0 0 {_n(width)} {_n(height)}" width="{_n(width)}" '
                  f'role="img" aria-label="{_e(label)}" xmlns="http://www.w3.org/2000/svg">'
                  + "".join(body) + "</svg>")


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


# -- scales ------------------------------------------------------------------------

class _Scale:
    def __init__(self, lo: float, hi: float, a: float, b: float, log: bool = False):
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
        if hi <= lo:
            hi = lo + 1.0
        self.lo, self.hi, self.a, self.b, self.log = lo, hi, a, b, log

    def __call__(self, v: float) -> float:
        if self.log:
            v = math.log10(max(v, 1e-300))
        return self.a + (v - self.lo) / (self.hi - self.lo) * (self.b - self.a)

    def ticks(self, n: int = 5) -> list:
        if self.log:
            lo, hi = math.floor(self.lo + 1e-9), math.ceil(self.hi - 1e-9)
            step = max(1, math.ceil((hi - lo) / 6))
            return [10.0 ** e for e in range(lo, hi + 1, step) if self.lo - 1e-9 <= e <= self.hi + 1e-9]
        span = self.hi - self.lo
        raw = span / max(n, 1)
        mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
        step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
        first = math.ceil(self.lo / step - 1e-9) * step
        out, v = [], first
        while v <= self.hi + step * 1e-9:
            out.append(round(v, 12))
            v += step
        return out


def _range(values, log=False, zero=False, pad=0.05):
    vals = [v for v in values if _finite(v) and (v > 0 or not log)]
    if not vals:
        return (1.0, 10.0) if log else (0.0, 1.0)
    lo, hi = min(vals), max(vals)
    if log:
        lo = _decade_below(lo)  # the smallest value is a visible bar / point above the axis
        if hi / lo < 10:
            hi = hi * 3
        return lo, hi
    if zero:
        lo = min(lo, 0.0)
    if hi == lo:
        hi, lo = hi + (abs(hi) or 1) * 0.5, lo - (abs(lo) or 1) * 0.5 if not zero else lo
    span = hi - lo
    return (lo if zero and lo == 0 else lo - span * pad), hi + span * pad


# -- header: receptive field inside the input ---------------------------------------

def rf_box(rf_size: Sequence, input_size: Sequence, size: float = 120) -> Markup:
    """The receptive field (top-left square) drawn to scale inside the input.

    Its label goes inside the square when it fits there, else right of the square inside the
    input, else under the input's caption."""
    if not rf_size or not input_size or len(rf_size) < 2 or len(input_size) < 2 or not all(input_size[:2]):
        return Markup("")
    ih, iw = float(input_size[0]), float(input_size[1])
    k = size / max(ih, iw)
    rh, rw = min(float(rf_size[0]), ih) * k, min(float(rf_size[1]), iw) * k
    label = f"RF {fmt(rf_size[1])}×{fmt(rf_size[0])}"
    tw = len(label) * SMALL_W
    height = ih * k + 18
    body = [f'<rect class="input" x="1" y="1" width="{_n(iw * k)}" height="{_n(ih * k)}"/>',
            f'<rect class="rf" x="1" y="1" width="{_n(rw)}" height="{_n(rh)}"/>',
            f'<text x="{_n(iw * k / 2 + 1)}" y="{_n(ih * k + 14)}" text-anchor="middle">'
            f'input {_e(int(iw))}×{_e(int(ih))}</text>']
    if rw >= tw + 8 and rh >= 16:  # inside the square
        x, y = 4.0, 12.0
    elif rw + tw + 8 <= iw * k and ih * k >= 16:  # right of the square, inside the input
        x, y = rw + 5, 12.0
    else:  # under the caption
        x, y = iw * k / 2 + 1 - tw / 2, height + 11
        height += 14
    body.append(f'<text x="{_n(max(x, 1))}" y="{_n(y)}" class="small">{_e(label)}</text>')
    return _svg(iw * k + 2, height, body, "receptive field drawn to scale inside the input", "chart rfbox")


# -- receptive-field growth -------------------------------------------------------------

def rf_growth(points: list, input_size: Optional[float], width: float = 680, height: float = 180) -> Markup:
    """``points``: [(layer name, rf size (max over axes), effective stride, hit)] in model order.
    The input's side is drawn as a horizontal line (and half of it, the ML401 threshold).

    Under the axis: each labelled layer's RF, then its name slanted at 40°; with many layers
    every k-th layer (and the last) is labelled, so that labels stay ``MIN_LABEL_GAP`` apart.
    ``height`` is the plot's share; the labels' depth is added to it."""
    if not points:
        return Markup("")
    n = len(points)
    left, right = 48, 12
    pw = width - left - right
    xsc = _Scale(0, max(n - 1, 1), left + 6, left + pw - 6)
    spacing = (xsc(1) - xsc(0)) if n > 1 else pw
    k = max(1, math.ceil(MIN_LABEL_GAP / spacing - 1e-9))
    shown = list(range(0, n, k))
    if shown[-1] != n - 1:  # the last layer is always labelled; its thinned neighbour gives way
        if (n - 1 - shown[-1]) * spacing < MIN_LABEL_GAP and len(shown) > 1:
            shown[-1] = n - 1
        else:
            shown.append(n - 1)
    top = 14 if k == 1 else 26
    slant_cos, slant_sin = math.cos(math.radians(40)), math.sin(math.radians(40))
    names = {}
    for i in shown:
        x = xsc(i)
        room = int((x + 4 - 2) / (SMALL_W * slant_cos))  # the slanted name ends at x + 4, starts >= 2
        names[i] = _fit_mid(points[i][0], max(min(18, room), 3))
    longest = max(len(t) for t in names.values())
    bottom = 26 + longest * SMALL_W * slant_sin + 8
    height = height + bottom
    ph = height - top - bottom
    ys = [p[1] for p in points] + ([input_size] if input_size else [])
    ysc = _Scale(0, max(ys) * 1.08, top + ph, top)
    body = _axes_y(ysc, left, pw, lambda v: fmt(v) + (" px" if v == ysc.ticks()[-1] else ""))
    pts = [(xsc(i), ysc(p[1])) for i, p in enumerate(points)]
    labels = _Labels((left, top - 12, left + pw, top + ph))
    labels.line(pts)
    if input_size:
        y_in, y_half = ysc(input_size), ysc(input_size / 2)
        body.append(f'<line class="ref" x1="{left}" x2="{_n(left + pw)}" y1="{_n(y_in)}" y2="{_n(y_in)}"/>')
        body.append(f'<line class="ref2" x1="{left}" x2="{_n(left + pw)}" y1="{_n(y_half)}" y2="{_n(y_half)}"/>')
        labels.line([(left, y_in), (left + pw, y_in)])
        labels.line([(left, y_half), (left + pw, y_half)])
        # lines closer than a label's height: the half label goes under its line, or, with no room
        # there, joins the input's label
        close = abs(y_half - y_in) < 14
        joined = close and y_half + 12 + 3 > top + ph
        text = f"input {fmt(input_size)} px" + ("; dotted: half of it" if joined else "")
        x, y, anchor = labels.place(text, [(left + pw - 2, y_in - 4, "end"), (left + 6, y_in - 4, "start")])
        body.append(f'<text class="small" x="{_n(x)}" y="{_n(y)}"{_anchor_attr(anchor)}>{_e(text)}</text>')
        if not joined:
            cands = []
            for x, anchor in ((left + pw - 2, "end"), (left + 6, "start")):
                for below in ((True, False) if close else (False, True)):
                    cands.append((x, y_half + 12 if below else y_half - 4, anchor))
            x, y, anchor = labels.place("half the input", cands)
            body.append(f'<text class="small" x="{_n(x)}" y="{_n(y)}"{_anchor_attr(anchor)}>half the input</text>')
    body.append('<polyline class="line s0" points="' + " ".join(f"{_n(x)},{_n(y)}" for x, y in pts) + '"/>')
    if n <= 80:
        for (x, y), p in zip(pts, points):
            cls = "dot hit" if p[3] else "dot s0"
            body.append(f'<circle class="{cls}" cx="{_n(x)}" cy="{_n(y)}" r="3"><title>{_e(p[0])}: RF '
                        f'{_e(fmt(p[1]))} px, stride {_e(fmt(p[2]))}</title></circle>')
    base = top + ph
    for i in shown:
        x = pts[i][0]
        cls = "small hit" if points[i][3] else "small"
        tx, ty = x + 4, base + 26
        body.append(f'<line class="axis" x1="{_n(x)}" x2="{_n(x)}" y1="{_n(base)}" y2="{_n(base + 3)}"/>'
                    f'<text class="small" x="{_n(x)}" y="{_n(base + 13)}" text-anchor="middle">'
                    f'{_e(fmt(points[i][1]))}</text>'
                    f'<text class="{cls}" x="{_n(tx)}" y="{_n(ty)}" text-anchor="end" '
                    f'transform="rotate(-40 {_n(tx)} {_n(ty)})"><title>{_e(points[i][0])}</title>'
                    f'{_e(names[i])}</text>')
    if k > 1:
        body.append(f'<text class="small muted" x="{left}" y="12">labelled: one layer in {k} of {n}, '
                    'and the last</text>')
    return _svg(width, height, body, "receptive field per layer against the input size")


def _axes_y(ysc: _Scale, left: float, pw: float, label=fmt) -> list:
    out = []
    for t in ysc.ticks():
        y = ysc(t)
        out.append(f'<line class="grid" x1="{left}" x2="{_n(left + pw)}" y1="{_n(y)}" y2="{_n(y)}"/>'
                   f'<text class="small" x="{left - 4}" y="{_n(y + 3.5)}" text-anchor="end">{_e(label(t))}</text>')
    return out


def _axes_x(xsc: _Scale, top: float, ph: float, label=fmt) -> list:
    out = []
    for t in xsc.ticks():
        x = xsc(t)
        out.append(f'<line class="grid" x1="{_n(x)}" x2="{_n(x)}" y1="{_n(top)}" y2="{_n(top + ph)}"/>'
                   f'<text class="small" x="{_n(x)}" y="{_n(top + ph + 12)}" text-anchor="middle">'
                   f'{_e(label(t))}</text>')
    return out


# -- bars ------------------------------------------------------------------------------

def bars(labels: list, cols: list, hits: Sequence = (), width: float = 680, row_h: float = 15,
         label_w: float = 170, label: str = "per-layer values") -> Markup:
    """Horizontal bars: one row per label, one panel per column.

    ``cols``: [{"title": str, "values": [float|None], "log": bool, "ref": float|None,
    "ref_label": str, "max": float|None, "fmt": callable, "band": (lo, hi)|None, "band_label": str}]
    (``band``: a shaded range of healthy values behind the bars, linear columns only); ``hits``: row indices drawn
    as layers with findings."""
    if not labels or not cols:
        return Markup("")
    hits = set(hits)
    top = 26
    gap = 14
    pw = (width - label_w - gap * len(cols)) / len(cols)
    height = top + row_h * len(labels) + 8
    body = []
    for i, name in enumerate(labels):
        y = top + i * row_h
        cls = "small hit" if i in hits else "small"
        body.append(f'<text class="{cls}" x="{_n(label_w - 4)}" y="{_n(y + row_h * 0.72)}" text-anchor="end">'
                    f'{_e(_fit(name, label_w - 8, 5.4))}</text>')
    for c, col in enumerate(cols):
        x0 = label_w + c * (pw + gap)
        vals = col["values"]
        log = col.get("log", False)
        f = col.get("fmt", fmt)
        good = [v for v in vals if _finite(v) and (v > 0 or not log)]
        if col.get("max") is not None:
            lo, hi = _decade_below(min(good) if good else 1e-6) if log else 0.0, col["max"]
        elif log:  # the reference line stays inside the panel
            ref = col.get("ref")
            lo, hi = _range(good + ([ref] if _finite(ref) and ref > 0 else []), log=True)
        else:
            lo, hi = 0.0, max(good + [0.0]) or 1.0
        sc = _Scale(lo, hi, x0, x0 + pw - 40, log=log)
        body.append(f'<text class="small b" x="{_n(x0)}" y="12">{_e(col["title"])}</text>')
        body.append(f'<line class="axis" x1="{_n(x0)}" x2="{_n(x0)}" y1="{top - 4}" '
                    f'y2="{_n(top + row_h * len(labels))}"/>')
        band = col.get("band")  # (lo, hi): a shaded range of good values behind the bars
        if band and _finite(band[0]) and _finite(band[1]) and not log:
            bx0, bx1 = sc(max(band[0], lo)), sc(min(band[1], hi))
            if bx1 > bx0:
                body.append(f'<rect class="band" x="{_n(bx0)}" y="{top - 4}" width="{_n(bx1 - bx0)}" '
                            f'height="{_n(row_h * len(labels) + 4)}"><title>{_e(col.get("band_label") or "")}'
                            f'</title></rect><text class="small muted" x="{_n((bx0 + bx1) / 2)}" y="22" '
                            f'text-anchor="middle">{_e(col.get("band_label") or "")}</text>')
        ref = col.get("ref")
        if _finite(ref) and (ref > 0 or not log):
            rx = sc(ref)
            body.append(f'<line class="ref" x1="{_n(rx)}" x2="{_n(rx)}" y1="{top - 6}" '
                        f'y2="{_n(top + row_h * len(labels))}"/><text class="small" x="{_n(rx)}" y="22" '
                        f'text-anchor="middle">{_e(col.get("ref_label") or f(ref))}</text>')
        for i, v in enumerate(vals):
            y = top + i * row_h + 2
            if not _finite(v):
                body.append(f'<text class="small muted" x="{_n(x0 + 3)}" y="{_n(y + row_h * 0.6)}">'
                            f'{"—" if v is None else _e(v)}</text>')
                continue
            w = max(sc(v) - x0, 0.0) if (v > 0 or not log) else 0.0
            if log and v > 0:
                w = max(w, 1.0)
            cls = f"bar s{c % 4}"  # the row's label is marked when the layer has findings
            body.append(f'<rect class="{cls}" x="{_n(x0)}" y="{_n(y)}" width="{_n(w)}" height="{_n(row_h - 4)}">'
                        f'<title>{_e(labels[i])}: {_e(f(v))}</title></rect>'
                        f'<text class="small" x="{_n(x0 + w + 3)}" y="{_n(y + row_h * 0.6)}">{_e(f(v))}</text>')
    return _svg(width, height, body, label)


def columns(labels: list, cols: list, hits: Sequence = (), width: float = 680, panel_h: float = 90,
            label: str = "per-layer values by layer index") -> Markup:
    """Compact columns by layer index (x), one panel per column spec (as :func:`bars`);
    for models with too many layers for one labelled row each."""
    n = len(labels)
    if not n or not cols:
        return Markup("")
    hits = set(hits)
    left, right, top, gap = 48, 8, 16, 28
    pw = width - left - right
    height = top + len(cols) * (panel_h + gap)
    slot = pw / n  # column i fills [left + i * slot, left + (i + 1) * slot) less a hairline gap
    bw = min(max(slot - 0.3, 0.6), slot)
    body = []
    for c, col in enumerate(cols):
        y0 = top + c * (panel_h + gap)
        vals = [v if _finite(v) else 0.0 for v in col["values"]]
        hi = max(vals + [0.0]) or 1.0
        sc = _Scale(0, hi, y0 + panel_h, y0)
        body.append(f'<text class="small b" x="{left}" y="{_n(y0 - 4)}">{_e(col["title"])}</text>')
        body.extend(_axes_y(sc, left, pw, col.get("fmt", fmt)))
        for i, v in enumerate(vals):
            if v <= 0:
                continue
            y = sc(v)
            cls = "bar hit" if i in hits else f"bar s{c % 4}"
            x = min(left + i * slot, left + pw - bw)  # rounding never pushes a column past the plot
            body.append(f'<rect class="{cls}" x="{x:.2f}" y="{_n(y)}" width="{bw:.2f}" '
                        f'height="{_n(y0 + panel_h - y)}"><title>{_e(labels[i])}: {_e(fmt(v))}</title></rect>')
    body.append(f'<text class="small" x="{_n(left + pw / 2)}" y="{_n(height - 6)}" text-anchor="middle">'
                f'layers 1 … {n} in model order (layers with findings in red)</text>')
    return _svg(width, height, body, label)


# -- lines -------------------------------------------------------------------------------

def line_chart(series: list, *, xlog: bool = False, ylog: bool = False, xlabel: str = "", ylabel: str = "",
               vlines: Sequence = (), hlines: Sequence = (), points: Sequence = (), width: float = 680,
               height: float = 260, label: str = "chart", ymin: Optional[float] = None,
               ymax: Optional[float] = None) -> Markup:
    """``series``: [{"name", "x": [...], "y": [...], "cls": "s0", "dots": bool}];
    ``vlines``/``hlines``: [(value, label, cls)]; ``points``: [(x, y, label, cls)]."""
    series = [s for s in series if any(_finite(v) for v in s.get("y", []))]
    if not series:
        return Markup("")
    left, right, top, bottom = 52, 14, 22, 36
    pw, ph = width - left - right, height - top - bottom
    xs = [x for s in series for x, y in zip(s["x"], s["y"]) if _finite(x) and _finite(y)]
    xs += [v for v, *_ in vlines if _finite(v)] + [p[0] for p in points if _finite(p[0])]
    ys = [y for s in series for y in s["y"] if _finite(y)]
    ys += [v for v, *_ in hlines if _finite(v)] + [p[1] for p in points if _finite(p[1])]
    if ylog:
        ys = [y for y in ys if y > 0] or [1.0]
    xlo, xhi = (min(xs), max(xs)) if xs else (0, 1)
    if xlog:
        xlo, xhi = _range([x for x in xs if x > 0], log=True) if xhi / max(xlo, 1e-300) < 10 else (xlo, xhi)
    ylo, yhi = _range(ys, log=ylog)
    if ymin is not None:
        ylo = ymin
    if ymax is not None:
        yhi = ymax
    xsc = _Scale(xlo, xhi, left, left + pw, log=xlog)
    ysc = _Scale(ylo, yhi, top + ph, top, log=ylog)
    body = _axes_y(ysc, left, pw) + _axes_x(xsc, top, ph)
    body.append(f'<rect class="frame" x="{left}" y="{top}" width="{_n(pw)}" height="{_n(ph)}"/>')
    if xlabel:
        body.append(f'<text class="small" x="{_n(left + pw / 2)}" y="{_n(height - 4)}" text-anchor="middle">'
                    f'{_e(xlabel)}</text>')
    if ylabel:
        body.append(f'<text class="small" x="12" y="{_n(top + ph / 2)}" text-anchor="middle" '
                    f'transform="rotate(-90 12 {_n(top + ph / 2)})">{_e(ylabel)}</text>')

    def clip_y(v):
        return min(max(ysc(v), top), top + ph)

    labels = _Labels((left, 0, left + pw, top + ph))
    # the legend, top left inside the frame
    legend = []
    lx = left + 6
    for s in series:
        if s.get("name"):
            name = str(s["name"])
            legend.append(f'<line class="line {s.get("cls", "s0")}" x1="{_n(lx)}" x2="{_n(lx + 14)}" '
                          f'y1="{top + 10}" y2="{top + 10}"/><text class="small" x="{_n(lx + 18)}" y="{top + 13}">'
                          f'{_e(name)}</text>')
            labels.take((lx, top + 3, lx + 18 + len(name) * SMALL_W, top + 16))
            lx += 26 + len(name) * SMALL_W
    if legend:  # on a light backing, so lines under it do not cross the names
        legend.insert(0, f'<rect x="{left + 2}" y="{top + 2}" width="{_n(lx - left - 8)}" height="16" '
                         f'fill="#fff" fill-opacity="0.85"/>')
    for s in series:
        pts = [(xsc(x), clip_y(y)) for x, y in zip(s["x"], s["y"])
               if _finite(x) and _finite(y) and (x > 0 or not xlog) and (y > 0 or not ylog)]
        if len(pts) > 600:  # keep the file small: every k-th point, always the last
            k = math.ceil(len(pts) / 600)
            pts = pts[::k] + ([pts[-1]] if (len(pts) - 1) % k else [])
        labels.line(pts)
        cls = s.get("cls", "s0")
        if len(pts) > 1:
            body.append(f'<polyline class="line {cls}" points="'
                        + " ".join(f"{_n(x)},{_n(y)}" for x, y in pts) + '"/>')
        if s.get("dots") or len(pts) == 1:
            for x, y in pts:
                body.append(f'<circle class="dot {cls}" cx="{_n(x)}" cy="{_n(y)}" r="3"/>')
    marks = sorted((v, text, cls) for v, text, cls in vlines if _finite(v) and (v > 0 or not xlog))
    for k, (v, text, cls) in enumerate(marks):
        x = min(max(xsc(v), left), left + pw)
        # the leftmost of several labels reads leftwards, the others rightwards, later ones a row lower
        end = k == 0 and len(marks) > 1
        anchor = ' text-anchor="end"' if end else ""
        ty = top - 6 + 12 * max(k - 1, 0)
        tx = x - 3 if end else x + 3
        labels.take(labels.box(tx, ty, text, "end" if end else "start"))
        labels.line([(x, top), (x, top + ph)])
        body.append(f'<line class="mark {cls}" x1="{_n(x)}" x2="{_n(x)}" y1="{top}" y2="{_n(top + ph)}"/>'
                    f'<text class="small {cls}" x="{_n(tx)}" y="{ty}"{anchor}>{_e(text)}</text>')
    hl = [(clip_y(v), text, cls) for v, text, cls in hlines if _finite(v) and (v > 0 or not ylog)]
    for y, _, _ in hl:
        labels.line([(left, y), (left + pw, y)])
    # data annotations first, then the reference lines' labels around them: each takes the first
    # place clear of the labels before it and of the lines (see _Labels)
    for x, y, text, cls in points:
        if _finite(x) and _finite(y):
            px, py = xsc(x), clip_y(y)
            labels.take((px - 4, py - 4, px + 4, py + 4))
            tx, ty, anchor = labels.place(text, [(px - 6, py - 7, "end"), (px - 6, py + 14, "end"),
                                                 (px + 6, py - 7, "start"), (px + 6, py + 14, "start")])
            body.append(f'<circle class="dot {cls}" cx="{_n(px)}" cy="{_n(py)}" r="4"/>'
                        f'<text class="small {cls}" x="{_n(tx)}" y="{_n(ty)}"{_anchor_attr(anchor)}>'
                        f'{_e(text)}</text>')
    for y, text, cls in hl:
        tx, ty, anchor = labels.place(text, _hline_candidates(y, left, pw, top, ph))
        body.append(f'<line class="mark {cls}" x1="{left}" x2="{_n(left + pw)}" y1="{_n(y)}" y2="{_n(y)}"/>'
                    f'<text class="small {cls}" x="{_n(tx)}" y="{_n(ty)}"{_anchor_attr(anchor)}>{_e(text)}</text>')
    body.extend(legend)
    return _svg(width, height, body, label)


# -- the layer graph ------------------------------------------------------------------

def graph_diagram(nodes: list, edges: list, anchor=None, width: float = 680) -> Markup:
    """``nodes``: [{"name", "type", "codes": [...]}] in topological order; ``edges``:
    [(src index, dst index)]; ``anchor(i)`` gives the layer-table anchor for node i.

    Layout: a node's row is its depth (longest path from an input); nodes of one depth
    sit side by side. Edges between neighbouring rows are straight; longer ones (skip
    connections) run on lanes right of the boxes, allocated greedily, so a 500-layer
    residual network stays a narrow vertical strip."""
    n = len(nodes)
    if not n:
        return Markup("")
    preds: list = [[] for _ in range(n)]
    for s, d in edges:
        preds[d].append(s)
    depth = [0] * n
    for i in range(n):
        depth[i] = max((depth[p] + 1 for p in preds[i] if p < i), default=0)
    rows: dict = {}
    for i in range(n):
        rows.setdefault(depth[i], []).append(i)
    # compress depths to consecutive rows
    order = sorted(rows)
    row_of = {}
    col_of = {}
    for r, d in enumerate(order):
        for c, i in enumerate(rows[d]):
            row_of[i], col_of[i] = r, c
    ncols = max(len(v) for v in rows.values())
    big = n > 150
    # boxes with 10-11 px text and a visible gap for the edge between neighbouring rows
    row_h = 22.0 if big else 27.0
    box_h = 14.0 if big else 18.0
    lanes_w = 60.0
    col_w = max(min((width - lanes_w - 8) / ncols, 420.0), 110.0)
    box_w = col_w - 12
    total_w = 8 + col_w * ncols + lanes_w
    height = 8 + row_h * len(order) + 4
    font, char_w = (' class="small"', SMALL_W) if big else ("", CHAR_W)

    def xy(i):
        return 4 + col_of[i] * col_w, 4 + row_of[i] * row_h

    body = []
    # edges first (under the boxes)
    long_edges = []
    for s, d in edges:
        if s >= n or d >= n:
            continue
        (x1, y1), (x2, y2) = xy(s), xy(d)
        if row_of[d] - row_of[s] == 1:
            body.append(f'<line class="edge" x1="{_n(x1 + box_w / 2)}" y1="{_n(y1 + box_h)}" '
                        f'x2="{_n(x2 + box_w / 2)}" y2="{_n(y2)}"/>')
        else:
            long_edges.append((row_of[s], row_of[d], s, d))
    long_edges.sort()
    lane_end: list = []
    lane_x0 = 4 + col_w * ncols
    for rs, rd, s, d in long_edges:
        lane = next((k for k, end in enumerate(lane_end) if end < rs), None)
        if lane is None:
            lane = len(lane_end)
            lane_end.append(rd)
        else:
            lane_end[lane] = rd
        lx = lane_x0 + 6 + (lane % 10) * 5
        (x1, y1), (x2, y2) = xy(s), xy(d)
        body.append(f'<path class="edge skip" d="M{_n(x1 + box_w)} {_n(y1 + box_h / 2)}H{_n(lx)}'
                    f'V{_n(y2 + box_h / 2)}H{_n(x2 + box_w)}"/>')
    for i, node in enumerate(nodes):
        x, y = xy(i)
        codes = node.get("codes") or []
        cls = "node hit" if codes else "node"
        tail = (" " + " ".join(codes)) if codes else ""
        label = f"{node['name']} · {node['type']}"
        text = _fit(label, box_w - 8 - len(tail) * char_w, char_w) + tail
        title = f"{node['name']} ({node['type']})" + (f" — {', '.join(codes)}" if codes else "")
        inner = (f'<rect class="{cls}" x="{_n(x)}" y="{_n(y)}" width="{_n(box_w)}" height="{_n(box_h)}" rx="3"/>'
                 f'<text{font} x="{_n(x + 4)}" y="{_n(y + box_h * 0.72)}">'
                 f'{_e(text)}</text>'
                 f'<title>{_e(title)}</title>')
        if anchor is not None:
            body.append(f'<a href="#{_e(anchor(i))}">{inner}</a>')
        else:
            body.append(f"<g>{inner}</g>")
    return _svg(total_w, height, body, "layer graph; layers with findings marked", "chart graph")
