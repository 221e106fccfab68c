"""Numba kernels for dictionary sentiment scores (plain arrays in, plain arrays out).

A batch of texts arrives tokenised once: ``ids`` (int64) holds every text's token ids one
text after the other, and text i owns ``ids[offsets[i]:offsets[i + 1]]`` (``offsets`` is
int64[n + 1], non-decreasing, ``offsets[0] == 0``). Flags of the vocabulary are bool
arrays indexed by id.
"""

import numpy as np
from numba import njit


@njit(cache=True)
def dictionary_counts_nb(ids, offsets, stop, positive, negative):
    """Per text: positive hits, negative hits and counted tokens.

    A token whose id is flagged ``stop`` is not counted at all; any other token counts
    once in ``tokens`` and, if flagged, once in ``positive`` or else ``negative`` (a word
    on both lists counts as positive). Returns ``pos, neg, tokens`` (int64[n] each).
    """
    n = offsets.shape[0] - 1
    pos = np.zeros(n, dtype=np.int64)
    neg = np.zeros(n, dtype=np.int64)
    tokens = np.zeros(n, dtype=np.int64)
    for i in range(n):
        p = 0
        q = 0
        k = 0
        for j in range(offsets[i], offsets[i + 1]):
            t = ids[j]
            if stop[t]:
                continue
            k += 1
            if positive[t]:
                p += 1
            elif negative[t]:
                q += 1
        pos[i] = p
        neg[i] = q
        tokens[i] = k
    return pos, neg, tokens


@njit(cache=True)
def polarity_nb(pos, neg, tokens, eps):
    """Polarity ``(P - N) / (P + N + eps)`` and subjectivity ``(P + N) / (tokens + eps)``.

    The operations are those of the Lydia formulas in float64 (the integer counts are
    converted exactly before the one addition and the one division), so the results are
    bit-for-bit those of the same formulas evaluated with numpy scalars.
    Returns ``polarity, subjectivity`` (float64[n] each).
    """
    n = pos.shape[0]
    polarity = np.empty(n)
    subjectivity = np.empty(n)
    for i in range(n):
        hits = pos[i] + neg[i]
        polarity[i] = float(pos[i] - neg[i]) / (float(hits) + eps)
        subjectivity[i] = float(hits) / (float(tokens[i]) + eps)
    return polarity, subjectivity
