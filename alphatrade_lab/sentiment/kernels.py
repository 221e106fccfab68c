"""Numba kernels for dictionary sentiment scores (plain arrays in, plain arrays out).

A batch of texts arrives tokenised once: ``ids`` (int64) holds every text's token ids one
text after the other, each text closed by the id -1 (so a batch of n texts holds n of
them, an empty text only its -1). Flags of the vocabulary are bool arrays indexed by id.
"""

import numpy as np
from numba import njit


@njit(cache=True)
def dictionary_counts_nb(ids, n, stop, positive, negative):
    """Per text: positive hits, negative hits and counted tokens, for ``n`` texts.

    A token whose id is flagged ``stop`` is not counted at all; any other token counts
    once in ``tokens`` and, if flagged, once in ``positive`` or else ``negative`` (a word
    on both lists counts as positive). Returns ``pos, neg, tokens`` (int64[n] each).
    Raises ``ValueError`` when ``ids`` does not close exactly ``n`` texts.
    """
    pos = np.zeros(n, dtype=np.int64)
    neg = np.zeros(n, dtype=np.int64)
    tokens = np.zeros(n, dtype=np.int64)
    i = 0
    for j in range(ids.shape[0]):
        t = ids[j]
        if t < 0:
            i += 1
            continue
        if i >= n:
            raise ValueError("ids hold tokens after the last text's end")
        if stop[t]:
            continue
        tokens[i] += 1
        if positive[t]:
            pos[i] += 1
        elif negative[t]:
            neg[i] += 1
    if i != n:
        raise ValueError("ids do not close as many texts as n")
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
