"""Inter-rater agreement metrics: pure functions of arrays (numpy only).

Shapes and conventions

* ``ratings`` is a raters x items matrix (``R x U``). A missing rating is ``None`` or ``NaN``. Values may
  be numbers or any hashable labels (``"A"``, ``"B"``, ``"tie"``...); interval and ratio data must be
  numeric, and ordinal labels that are not numbers need an explicit ``value_domain`` (their order).
* ``counts`` (for Fleiss) is an items x categories matrix (``N x K``) of how many raters put item ``i``
  in category ``j``; every row sums to the same number of raters ``n``.
* Every function returns a Python float and raises :class:`rlhfops.errors.UserError` when the statistic
  is undefined for the data (nothing pairable, one category only...), never a silent ``nan``.

References

* Cohen, J. (1960). A coefficient of agreement for nominal scales. Educational and Psychological
  Measurement 20(1), 37-46.
* Cohen, J. (1968). Weighted kappa: nominal scale agreement with provision for scaled disagreement or
  partial credit. Psychological Bulletin 70(4), 213-220.
* Fleiss, J. L. (1971). Measuring nominal scale agreement among many raters. Psychological Bulletin
  76(5), 378-382.
* Krippendorff, K. (2011). Computing Krippendorff's Alpha-Reliability. Annenberg School for
  Communication, University of Pennsylvania, https://repository.upenn.edu/asc_papers/43 .

Krippendorff's alpha is computed from the coincidence matrix without materialising it where the metric
allows: for the nominal metric only its diagonal and marginals are needed; for the interval metric
``sum_ck o_ck (c-k)^2`` is a sum of within-unit squared deviations; the ordinal metric of Krippendorff
(2011, sec. C) equals the interval metric applied to mid-ranks ``g(c) = sum_{v<c} n_v + n_c / 2``, since
``(sum_{g=c..k} n_g - (n_c + n_k)/2)^2 = (g(k) - g(c))^2``. Only the ratio metric builds value pairs
(within units, and ``V x V`` for the expected disagreement). Cost is ``O(N log N)`` in the number ``N``
of present ratings, independent of the number of raters x items cells beyond one pass over them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from rlhfops.errors import UserError

Level = Literal["nominal", "ordinal", "interval", "ratio"]
LEVELS: tuple[str, ...] = ("nominal", "ordinal", "interval", "ratio")
Weights = Literal["linear", "quadratic"] | None
_DENSE_TABLE_MAX = 4_000_000  # units x values cells up to which counts use a dense table (no sort)

__all__ = [
    "LEVELS",
    "CategoryCounts",
    "Coincidences",
    "category_counts",
    "coincidence_matrix",
    "cohen_kappa",
    "fleiss_kappa",
    "krippendorff_alpha",
    "percent_agreement",
]


# ----------------------------------------------------------------------------------------------------
# Encoding: any ratings matrix -> integer codes (-1 = missing) + the sorted value domain
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Encoded:
    shape: tuple[int, int]  # (R, U)
    flat: np.ndarray  # int64 [N] positions of the present ratings in the row-major R x U matrix
    code: np.ndarray  # int64 [N] value code of each present rating
    values: np.ndarray  # [V] the value of each code (float for numeric data, object otherwise)
    numeric: bool

    def codes(self) -> np.ndarray:
        """The dense R x U code matrix, -1 where missing."""
        out = np.full(self.shape[0] * self.shape[1], -1, dtype=np.int64)
        out[self.flat] = self.code
        return out.reshape(self.shape)


def _is_missing(v: Any) -> bool:
    return v is None or (isinstance(v, float | np.floating) and v != v)


def _matrix(ratings: Any, name: str, ndim: int = 2) -> np.ndarray:
    arr = np.asarray(ratings) if isinstance(ratings, np.ndarray) else None
    if arr is None:
        try:
            arr = np.asarray(ratings)
            if arr.dtype.kind in "USO":  # keep None / NaN as missing values, not the string "nan"
                arr = np.asarray(ratings, dtype=object)
        except ValueError as err:  # ragged rows
            raise UserError(
                f"{name}: rows of different lengths ({err}); pad missing ratings with None"
            ) from None
    if arr.ndim != ndim:
        shape = "raters x items" if ndim == 2 else "one rating per item"
        raise UserError(f"{name}: expected a {ndim}-D array ({shape}), got shape {arr.shape}")
    return arr


def _domain_codes(present: np.ndarray, value_domain: Any, name: str) -> tuple[np.ndarray, np.ndarray]:
    """(values, code of each present float) for the sorted distinct values or a given domain."""
    if value_domain is not None:
        values = np.asarray(value_domain, dtype=np.float64)
        if len(np.unique(values)) != len(values):
            raise UserError(f"{name}: value_domain has repeated values: {list(value_domain)}")
        order = np.argsort(values, kind="stable")
        idx = order[np.searchsorted(values, present, sorter=order).clip(0, len(values) - 1)]
        bad = values[idx] != present
        if bad.any():
            raise UserError(
                f"{name}: value {float(present[bad][0])!r} is not in value_domain {list(value_domain)}; "
                "add it or correct the rating"
            )
        return values, idx
    if len(present) and (present == np.round(present)).all():
        lo, hi = present.min(), present.max()
        if hi - lo < 4 * len(present) + 1024:  # small integer range: O(N) instead of a sort
            offset = (present - lo).astype(np.int64)
            seen = np.bincount(offset)
            lookup = np.cumsum(seen > 0) - 1
            return np.flatnonzero(seen).astype(np.float64) + lo, lookup[offset]
    values, idx = np.unique(present, return_inverse=True)
    return values, idx.astype(np.int64)


def _encode_numeric(x: np.ndarray, name: str, value_domain: Any) -> _Encoded:
    x = x.astype(np.float64, copy=False)
    raveled = x.ravel()
    flat = np.flatnonzero(~np.isnan(raveled))
    present = raveled[flat]
    if np.isinf(present).any():
        raise UserError(f"{name}: contains infinite values; use NaN (or None) for missing ratings")
    values, code = _domain_codes(present, value_domain, name)
    return _Encoded((x.shape[0], x.shape[1]) if x.ndim == 2 else (1, x.shape[0]), flat, code, values, True)


def _encode(ratings: Any, name: str = "ratings", value_domain: Sequence[Any] | None = None) -> _Encoded:
    arr = _matrix(ratings, name)
    if arr.dtype.kind in "biuf":
        return _encode_numeric(arr, name, value_domain)
    raveled = arr.astype(object).ravel()
    missing = np.fromiter((_is_missing(v) for v in raveled), dtype=bool, count=raveled.size)
    flat = np.flatnonzero(~missing)
    present = raveled[flat]
    if value_domain is None and all(
        isinstance(v, int | float | np.integer | np.floating) and not isinstance(v, bool) for v in present
    ):
        numeric = np.full(raveled.shape, np.nan)
        numeric[flat] = present.astype(np.float64)
        return _encode_numeric(numeric.reshape(arr.shape), name, None)
    if value_domain is None:
        distinct = set(present.tolist())
        try:
            domain = sorted(distinct)
        except TypeError:  # mixed types: a stable order by type name then text
            domain = sorted(distinct, key=lambda v: (type(v).__name__, str(v)))
    else:
        domain = list(value_domain)
        if len(set(domain)) != len(domain):
            raise UserError(f"{name}: value_domain has repeated values: {domain}")
    index = {v: i for i, v in enumerate(domain)}
    try:
        code = np.fromiter((index[v] for v in present.tolist()), dtype=np.int64, count=present.size)
    except KeyError as err:
        raise UserError(
            f"{name}: value {err.args[0]!r} is not in value_domain {domain}; add it or correct the rating"
        ) from None
    except TypeError as err:
        raise UserError(f"{name}: ratings must be hashable labels or numbers ({err})") from None
    values = np.empty(len(domain), dtype=object)
    values[:] = domain
    return _Encoded((arr.shape[0], arr.shape[1]), flat, code, values, False)


def _values_list(enc: _Encoded) -> list[Any]:
    return [float(v) for v in enc.values] if enc.numeric else list(enc.values)


@dataclass(frozen=True)
class _Units:
    """Pairable units (>= 2 ratings) as sparse (unit, value code, count) triples sorted by unit."""

    unit: np.ndarray  # [T] dense unit index 0..P-1 over pairable units
    code: np.ndarray  # [T]
    count: np.ndarray  # [T] float: raters giving this value in this unit (n_uc)
    m: np.ndarray  # [P] ratings per pairable unit (m_u >= 2)
    n_c: np.ndarray  # [V] pairable values per category


def _units(enc: _Encoded) -> _Units:
    n_units, v = enc.shape[1], max(len(enc.values), 1)
    keys = (enc.flat % n_units) * v + enc.code
    if n_units * v <= _DENSE_TABLE_MAX:  # dense unit x value table: O(N), no sort
        table = np.bincount(keys, minlength=n_units * v).reshape(n_units, v)
        m_all = table.sum(axis=1)
        pairable = np.flatnonzero(m_all >= 2)
        sub = table[pairable]
        unit, code = np.nonzero(sub)
        cnt = sub[unit, code].astype(np.float64)
    else:
        uniq, counts = np.unique(keys, return_counts=True)
        m_all = np.bincount(uniq // v, weights=counts, minlength=n_units)
        pairable = np.flatnonzero(m_all >= 2)
        keep = m_all[uniq // v] >= 2
        remap = np.full(n_units, -1, dtype=np.int64)
        remap[pairable] = np.arange(len(pairable))
        unit, code, cnt = remap[uniq[keep] // v], uniq[keep] % v, counts[keep].astype(np.float64)
    n_c = np.bincount(code, weights=cnt, minlength=len(enc.values))
    return _Units(unit, code, cnt, m_all[pairable].astype(np.float64), n_c)


def _require_pairable(u: _Units, name: str) -> None:
    if len(u.m) == 0:
        raise UserError(
            f"{name}: no item has two or more ratings, so there is nothing to compare; "
            "each item needs at least two raters"
        )


# ----------------------------------------------------------------------------------------------------
# Percent agreement
# ----------------------------------------------------------------------------------------------------


def percent_agreement(ratings: Any) -> float:
    """Share of agreeing rater pairs per item, averaged over items with at least two ratings.

    ratings: ``R x U`` (raters x items), ``None``/``NaN`` missing. For an item with ``m_u`` ratings of
    which ``n_uc`` are category ``c``, the item's agreement is
    ``sum_c n_uc (n_uc - 1) / (m_u (m_u - 1))`` (agreeing ordered pairs over all ordered pairs; the
    ``P_i`` of Fleiss 1971, eq. 2, generalised to a varying number of raters). Items with fewer than two
    ratings are skipped. Not chance-corrected: compare with :func:`krippendorff_alpha`.
    """
    u = _units(_encode(ratings, "percent_agreement ratings"))
    _require_pairable(u, "percent_agreement")
    per_item = np.bincount(u.unit, weights=u.count * (u.count - 1), minlength=len(u.m)) / (u.m * (u.m - 1))
    return float(per_item.mean())


# ----------------------------------------------------------------------------------------------------
# Cohen's kappa (two raters)
# ----------------------------------------------------------------------------------------------------


def cohen_kappa(a: Any, b: Any, weights: Weights = None, labels: Sequence[Any] | None = None) -> float:
    """Cohen's kappa between two raters, optionally weighted.

    a, b: ``[N]`` the two raters' labels for the same ``N`` items; items where either is missing
    (``None``/``NaN``) are dropped. labels: the categories in order (default: the sorted distinct labels
    of both); weights use the label positions ``i, j`` in that order:

    * ``None``: ``w_ij = 1 - [i == j]`` (Cohen 1960, kappa = (p_o - p_e) / (1 - p_e));
    * ``"linear"``: ``w_ij = |i - j|``; ``"quadratic"``: ``w_ij = (i - j)^2`` (Cohen 1968, eq. 6:
      kappa_w = 1 - sum w_ij o_ij / sum w_ij e_ij, with observed proportions ``o`` and expected
      ``e_ij = p_i. p_.j`` from the marginals).

    Same definition as ``sklearn.metrics.cohen_kappa_score``. Raises UserError when no item has both
    labels or when the expected disagreement is zero (both raters used one and the same category).
    """
    if weights not in (None, "linear", "quadratic"):
        raise UserError(f"cohen_kappa: weights={weights!r}; use None, 'linear' or 'quadratic'")
    a_arr, b_arr = _matrix(a, "cohen_kappa a", 1), _matrix(b, "cohen_kappa b", 1)
    if len(a_arr) != len(b_arr):
        raise UserError(
            f"cohen_kappa: a has {len(a_arr)} labels and b has {len(b_arr)}; give one per item each"
        )
    both = np.empty((2, len(a_arr)), dtype=object)
    both[0], both[1] = a_arr.astype(object), b_arr.astype(object)
    enc = _encode(both, "cohen_kappa labels", labels)
    codes = enc.codes()
    ok = (codes >= 0).all(axis=0)
    if not ok.any():
        raise UserError("cohen_kappa: no item has a label from both raters; nothing to compare")
    k = len(enc.values)
    ca, cb = codes[0, ok], codes[1, ok]
    observed = np.bincount(ca * k + cb, minlength=k * k).reshape(k, k).astype(np.float64)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    i, j = np.indices((k, k))
    w = {None: (i != j).astype(np.float64), "linear": np.abs(i - j).astype(np.float64)}.get(
        weights, ((i - j) ** 2).astype(np.float64)
    )
    denom = float((w * expected).sum())
    if denom <= 0:
        raise UserError(
            f"cohen_kappa: kappa is undefined: both raters gave every item the same label "
            f"({_values_list(enc)[ca[0]]!r}), so chance agreement is 1"
        )
    return float(1.0 - (w * observed).sum() / denom)


# ----------------------------------------------------------------------------------------------------
# Fleiss' kappa (many raters, fixed number per item)
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CategoryCounts:
    """Items x categories counts built from a ratings matrix (input of :func:`fleiss_kappa`)."""

    labels: list[Any]  # [K] category of each column
    counts: np.ndarray  # [U, K] int: raters putting item u in category k


def category_counts(ratings: Any, labels: Sequence[Any] | None = None) -> CategoryCounts:
    """Turn a raters x items matrix (``None``/``NaN`` missing) into items x categories counts."""
    enc = _encode(ratings, "category_counts ratings", labels)
    k = len(enc.values)
    n_items = enc.shape[1]
    flat = np.bincount((enc.flat % n_items) * k + enc.code, minlength=n_items * k)
    return CategoryCounts(_values_list(enc), flat.reshape(n_items, k))


def fleiss_kappa(counts: Any) -> float:
    """Fleiss' kappa for ``N`` items each rated by the same number ``n >= 2`` of raters.

    counts: ``N x K`` non-negative integers, ``counts[i, j]`` = raters who put item ``i`` in category
    ``j`` (build it with :func:`category_counts`). Fleiss (1971): ``p_j = sum_i n_ij / (N n)`` (eq. 2),
    ``P_i = (sum_j n_ij^2 - n) / (n (n - 1))`` (eq. 6), ``P_bar = mean_i P_i`` (eq. 7),
    ``P_e = sum_j p_j^2`` (eq. 9), ``kappa = (P_bar - P_e) / (1 - P_e)`` (eq. 10). Same as
    ``statsmodels.stats.inter_rater.fleiss_kappa(counts, method="fleiss")``. Raters may differ between
    items but their number may not: for a varying number use :func:`krippendorff_alpha`.
    """
    try:
        c = np.asarray(counts, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise UserError(
            f"fleiss_kappa: counts must be an items x categories array of integers ({err})"
        ) from None
    if c.ndim != 2 or c.shape[0] == 0 or c.shape[1] == 0:
        raise UserError(
            f"fleiss_kappa: counts must be a non-empty items x categories matrix, got shape {c.shape}"
        )
    if not np.isfinite(c).all() or (c < 0).any() or (c != np.round(c)).any():
        raise UserError("fleiss_kappa: counts must be non-negative integers (raters per item and category)")
    per_item = c.sum(axis=1)
    n = per_item[0]
    if (per_item != n).any():
        bad = int(np.flatnonzero(per_item != n)[0])
        raise UserError(
            f"fleiss_kappa: item 0 has {int(n)} ratings but item {bad} has {int(per_item[bad])}; Fleiss' "
            "kappa needs the same number of raters per item (use krippendorff_alpha for missing ratings)"
        )
    if n < 2:
        raise UserError(
            f"fleiss_kappa: each item has {int(n)} rating(s); at least two raters per item needed"
        )
    p_j = c.sum(axis=0) / c.sum()
    p_i = ((c * c).sum(axis=1) - n) / (n * (n - 1))
    p_e = float((p_j * p_j).sum())
    if p_e >= 1.0 - 1e-15:
        raise UserError(
            "fleiss_kappa: every rating is in one category, so chance agreement is 1 and kappa is undefined"
        )
    return float((p_i.mean() - p_e) / (1.0 - p_e))


# ----------------------------------------------------------------------------------------------------
# Krippendorff's alpha
# ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Coincidences:
    """Krippendorff's coincidence matrix ``o_ck`` (2011, sec. A.3) over the value domain."""

    values: list[Any]  # [V]
    matrix: np.ndarray  # [V, V] float; symmetric; row sums are n_c, the total is n (pairable values)


def _within_pairs(u: _Units) -> tuple[np.ndarray, np.ndarray]:
    """Indices (left, right) of every ordered pair of triples in the same unit (incl. left == right)."""
    d = np.bincount(u.unit, minlength=len(u.m))  # distinct values per unit
    start = np.cumsum(d) - d
    reps = d[u.unit]
    left = np.repeat(np.arange(len(u.unit)), reps)
    block = np.repeat(np.cumsum(reps) - reps, reps)
    right = start[u.unit[left]] + (np.arange(len(left)) - block)
    return left, right


def coincidence_matrix(ratings: Any, value_domain: Sequence[Any] | None = None) -> Coincidences:
    """The coincidence matrix of a raters x items ratings matrix (``None``/``NaN`` missing).

    ``o_ck = sum_u (n_uc n_uk - [c == k] n_uc) / (m_u - 1)`` over units with ``m_u >= 2`` ratings
    (Krippendorff 2011, sec. A.3). ``V x V`` dense: meant for inspection and small value domains.
    """
    enc = _encode(ratings, "coincidence_matrix ratings", value_domain)
    u = _units(enc)
    v = len(enc.values)
    left, right = _within_pairs(u)
    w = u.count[left] * u.count[right] - np.where(left == right, u.count[left], 0.0)
    w /= u.m[u.unit[left]] - 1
    o = np.bincount(u.code[left] * v + u.code[right], weights=w, minlength=v * v).reshape(v, v)
    return Coincidences(_values_list(enc), o)


def _interval_sums(u: _Units, x: np.ndarray) -> tuple[float, float]:
    """(sum_ck o_ck (x_c - x_k)^2, sum_ck n_c n_k (x_c - x_k)^2) by two-pass squared deviations."""
    n = u.n_c.sum()
    xc = x - (u.n_c * x).sum() / n  # centre for accuracy
    xv = xc[u.code]
    s1 = np.bincount(u.unit, weights=u.count * xv, minlength=len(u.m))
    dev = xv - (s1 / u.m)[u.unit]
    ss = np.bincount(u.unit, weights=u.count * dev * dev, minlength=len(u.m))
    # sum_{i != j in u} (x_i - x_j)^2 = 2 m_u sum_i (x_i - mean_u)^2, weighted by 1 / (m_u - 1)
    observed = float((2.0 * u.m * ss / (u.m - 1)).sum())
    expected = float(2.0 * n * (u.n_c * xc * xc).sum())
    return observed, expected


def _ratio_delta(x1: np.ndarray, x2: np.ndarray) -> np.ndarray:
    s = x1 + x2
    return np.divide(x1 - x2, s, out=np.zeros(np.broadcast(x1, x2).shape), where=s != 0) ** 2


def _ratio_sums(u: _Units, x: np.ndarray) -> tuple[float, float]:
    left, right = _within_pairs(u)
    d = _ratio_delta(x[u.code[left]], x[u.code[right]])
    observed = float((u.count[left] * u.count[right] * d / (u.m[u.unit[left]] - 1)).sum())
    used = np.flatnonzero(u.n_c)
    xs, ns = x[used], u.n_c[used]
    expected = 0.0
    step = max(1, 4_000_000 // max(len(xs), 1))
    for s in range(0, len(xs), step):  # V x V in row blocks, bounded memory
        block = _ratio_delta(xs[s : s + step, None], xs[None, :])
        expected += float((ns[s : s + step, None] * block * ns[None, :]).sum())
    return observed, expected


def krippendorff_alpha(
    ratings: Any, level: Level = "nominal", value_domain: Sequence[Any] | None = None
) -> float:
    """Krippendorff's alpha for a raters x items matrix with missing values.

    ratings: ``R x U``, ``None``/``NaN`` missing; units with fewer than two ratings are not pairable and
    are ignored. level: the difference function ``delta^2_ck`` (Krippendorff 2011, sec. A.4):

    * ``"nominal"``: ``[c != k]``;
    * ``"ordinal"``: ``(sum_{g=c..k} n_g - (n_c + n_k) / 2)^2`` with ``n_g`` the pairable values of rank
      ``g`` (order: numeric, or ``value_domain``);
    * ``"interval"``: ``(c - k)^2``;
    * ``"ratio"``: ``((c - k) / (c + k))^2`` (values must be >= 0; ``0/0`` counts as 0).

    ``alpha = 1 - D_o / D_e = 1 - (n - 1) sum_ck o_ck delta^2_ck / sum_ck n_c n_k delta^2_ck`` (sec. A.5),
    with the coincidence matrix ``o`` (see :func:`coincidence_matrix`) and ``n`` pairable values.
    value_domain: the ordered categories (needed for ordinal labels that are not numbers; every rating
    must be in it). Matches the ``krippendorff`` package (``krippendorff.alpha``) to rounding.
    Raises UserError when nothing is pairable or when all pairable values are equal (``D_e = 0``).
    """
    if level not in LEVELS:
        raise UserError(f"krippendorff_alpha: level={level!r}; use one of {', '.join(LEVELS)}")
    enc = _encode(ratings, "krippendorff_alpha ratings", value_domain)
    if level in ("interval", "ratio") and not enc.numeric:
        raise UserError(
            f"krippendorff_alpha: level={level!r} needs numeric ratings; got labels such as "
            f"{enc.values[0]!r} (use level='nominal', or 'ordinal' with value_domain)"
        )
    if level == "ordinal" and not enc.numeric and value_domain is None:
        raise UserError(
            "krippendorff_alpha: ordinal labels that are not numbers need value_domain (their order)"
        )
    u = _units(enc)
    _require_pairable(u, "krippendorff_alpha")
    n = float(u.n_c.sum())
    if (u.n_c > 0).sum() < 2:
        only = _values_list(enc)[int(np.flatnonzero(u.n_c)[0])]
        raise UserError(
            f"krippendorff_alpha: every pairable rating is {only!r}, so expected disagreement is 0 and alpha "
            "is undefined; it needs at least two different values"
        )
    if level == "nominal":
        agree = float((u.count * (u.count - 1) / (u.m[u.unit] - 1)).sum())  # sum_c o_cc
        observed, expected = n - agree, n * n - float((u.n_c * u.n_c).sum())
    elif level == "ratio":
        x = enc.values.astype(np.float64)
        if (x[u.n_c > 0] < 0).any():
            raise UserError(
                "krippendorff_alpha: ratio data must be >= 0 (a ratio scale has an absolute zero)"
            )
        observed, expected = _ratio_sums(u, x)
    else:
        x = np.cumsum(u.n_c) - u.n_c / 2.0 if level == "ordinal" else enc.values.astype(np.float64)
        observed, expected = _interval_sums(u, x)
    if expected <= 0:
        raise UserError("krippendorff_alpha: expected disagreement is 0 for these values; alpha is undefined")
    return float(1.0 - (n - 1.0) * observed / expected)
