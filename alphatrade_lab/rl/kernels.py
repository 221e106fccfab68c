"""Numba kernels of the trading environments (plain arrays in, plain arrays out).

Every environment ``e`` keeps the backtest engine's own state: row ``e`` of ``cstate``
(column fields ``C_*``) and of ``gstate`` (cash-group fields ``G_*``) from
:mod:`alphatrade_lab.backtest.kernels`, so the fills, fees and slippage are computed by
the engine's functions themselves:

* a discrete target (-1 short, 0 flat, 1 long) is turned into the signal action that
  ``from_signals`` would take on it and run by ``execute_action_nb`` (all the cash per
  entry, an opposite target reverses the position in one order);
* a continuous target weight is rebalanced as by ``simulate_weights_nb`` for one column
  (:func:`rebalance_nb`).

The data of all environments is one "panel": ``close[r]`` and ``features[r, :]`` for the
rows ``r`` of every symbol, one symbol after another. An environment at row ``r`` sees
``features[r]``, trades at ``close[r]`` and moves to row ``r + 1``, where its position is
valued at ``close[r + 1]``; the reward is that value's return over the value before the
trade at ``r`` (:func:`reward_nb`), so the fees and slippage of the trade are in it.
"""

import numpy as np
from numba import njit, prange

from alphatrade_lab.backtest import kernels as backtest_nb

LOG, SIMPLE = 0, 1
DISCRETE, CONTINUOUS = 0, 1
# The value ratio a log reward uses when the value falls to or below zero.
RUIN_RATIO = 1e-12

# Rows of the ``counts`` array: zeros (the record capacities), orders filled, trades closed.
ZERO, ORDERS, TRADES = 0, 1, 2


def empty_records() -> tuple[np.ndarray, np.ndarray]:
    """The (empty) order and trade record buffers the kernels pass to the engine, which
    then only counts them."""
    return np.empty((0, backtest_nb.N_ORDER)), np.empty((0, backtest_nb.N_TRADE))


@njit(cache=True, inline="always")
def target_action_nb(pos, target, direction):
    """The ``from_signals`` action that takes position ``pos`` to the sign ``target``.

    ``target`` 1 is an entry, -1 an exit in ``BOTH`` (a short), 0 an exit in
    ``LONGONLY`` (flat); in ``BOTH`` a target 0 closes the position.
    """
    if target > 0:
        if pos < 0:
            return backtest_nb.A_TO_LONG
        return backtest_nb.A_OPEN_LONG if pos == 0 else backtest_nb.A_NONE
    if target < 0 and direction == backtest_nb.BOTH:
        if pos > 0:
            return backtest_nb.A_TO_SHORT
        return backtest_nb.A_OPEN_SHORT if pos == 0 else backtest_nb.A_NONE
    if pos > 0:
        return backtest_nb.A_CLOSE_LONG
    if pos < 0:
        return backtest_nb.A_CLOSE_SHORT
    return backtest_nb.A_NONE


@njit(cache=True)
def rebalance_nb(e, bar, weight, price, fees, slippage, gran, cstate, gstate, counts, rec_o, rec_t):
    """Trade environment ``e`` to ``weight`` of its value at ``price``: the one-column case
    of ``simulate_weights_nb`` (a sell first; a buy scaled down to the cash, fees and
    slippage included; sizes rounded down to ``gran``, NaN: no rounding)."""
    pos = cstate[e, backtest_nb.C_POS]
    value = gstate[e, backtest_nb.G_CASH]
    if pos != 0:
        value += pos * cstate[e, backtest_nb.C_VAL]
    target = weight * value / price
    if backtest_nb.is_close_nb(target, pos):
        return
    d = target - pos
    d = np.sign(d) * backtest_nb.floor_to_nb(abs(d), gran)
    if d < 0:
        adj = price * (1.0 - slippage)
        paid = -d * adj * fees
        gstate[e, backtest_nb.G_CASH] += -d * adj - paid
        cstate[e, backtest_nb.C_POS] = backtest_nb.add_nb(pos, d)
        backtest_nb.on_fill_nb(e, e, bar, -1.0, -d, adj, paid, cstate, gstate, rec_o,
                               counts[ZERO], counts[ORDERS], counts[ZERO], rec_t,
                               counts[ZERO], counts[TRADES], counts[ZERO])
        return
    if d <= 0:
        return
    cash = gstate[e, backtest_nb.G_CASH]
    cost = d * price * (1.0 + slippage) * (1.0 + fees)
    if cost > cash and not backtest_nb.is_close_nb(cost, cash):
        d = backtest_nb.floor_to_nb(d * (max(cash, 0.0) / cost), gran)
    if d > 0 and d >= backtest_nb.MIN_SIZE:
        adj = price * (1.0 + slippage)
        paid = d * adj * fees
        gstate[e, backtest_nb.G_CASH] = backtest_nb.add_nb(cash, -(d * adj + paid))
        cstate[e, backtest_nb.C_POS] = backtest_nb.add_nb(pos, d)
        backtest_nb.on_fill_nb(e, e, bar, 1.0, d, adj, paid, cstate, gstate, rec_o,
                               counts[ZERO], counts[ORDERS], counts[ZERO], rec_t,
                               counts[ZERO], counts[TRADES], counts[ZERO])


@njit(cache=True, inline="always")
def trade_nb(e, bar, mode, action, price, direction, fees, slippage, gran, cstate, gstate,
             counts, rec_o, rec_t):
    """Environment ``e`` acts at ``price`` (bar ``bar``'s close): ``mode`` ``DISCRETE``
    takes ``action`` as a target sign, ``CONTINUOUS`` as a target weight."""
    if mode == CONTINUOUS:
        rebalance_nb(e, bar, action, price, fees, slippage, gran, cstate, gstate, counts,
                     rec_o, rec_t)
        return
    todo = target_action_nb(cstate[e, backtest_nb.C_POS], action, direction)
    if todo != backtest_nb.A_NONE:
            backtest_nb.execute_action_nb(e, e, todo, bar, price, fees, 0.0, slippage, 1.0, gran,
                                      cstate, gstate, rec_o, counts[ZERO], counts[ORDERS],
                                      counts[ZERO], rec_t, counts[ZERO], counts[TRADES],
                                      counts[ZERO])


@njit(cache=True, inline="always")
def value_nb(e, price, cstate, gstate):
    """Mark environment ``e`` to ``price``: its value, cash plus position times price."""
    cstate[e, backtest_nb.C_VAL] = price
    pos = cstate[e, backtest_nb.C_POS]
    value = gstate[e, backtest_nb.G_CASH]
    if pos != 0:
        value += pos * price
    return value


@njit(cache=True, inline="always")
def reward_nb(value, prev, kind, risk_penalty):
    """The step's reward: the simple return ``r = value / prev - 1`` (``SIMPLE``) or
    ``log(value / prev)`` (``LOG``; ``log(RUIN_RATIO)`` once the value is <= 0), minus
    ``risk_penalty * r ** 2``."""
    r = value / prev - 1.0
    if kind == LOG:
        out = np.log(max(value / prev, RUIN_RATIO))
    else:
        out = r
    return out - risk_penalty * r * r


@njit(cache=True)
def reset_env_nb(e, row, init_cash, close, cstate, gstate, counts, rows, prev):
    """Start environment ``e`` afresh at panel row ``row`` with ``init_cash``."""
    # The fields of backtest_nb.init_state_nb, written in place (no allocation).
    cstate[e, :] = 0.0
    cstate[e, backtest_nb.C_STOP_REF] = np.nan
    cstate[e, backtest_nb.C_TR_BAR] = -1.0
    gstate[e, :] = 0.0
    for f in (backtest_nb.G_CASH, backtest_nb.G_FREE, backtest_nb.G_INIT, backtest_nb.G_PREV_V):
        gstate[e, f] = init_cash
    gstate[e, backtest_nb.G_PEAK] = np.nan
    gstate[e, backtest_nb.G_PEAK_BAR] = -1.0
    gstate[e, backtest_nb.G_LAST_BAR] = -1.0
    counts[ORDERS, e] = 0
    counts[TRADES, e] = 0
    rows[e] = row
    cstate[e, backtest_nb.C_VAL] = close[row]
    prev[e] = init_cash


@njit(cache=True, inline="always")
def write_obs_nb(e, row, features, cstate, gstate, include_position, out):
    """Observation of environment ``e`` at panel ``row`` into ``out[e]``: the row's
    features, then (``include_position``) the position's weight in the value."""
    k = features.shape[1]
    for j in range(k):
        out[e, j] = features[row, j]
    if include_position:
        pos = cstate[e, backtest_nb.C_POS]
        w = 0.0
        if pos != 0:
            held = pos * cstate[e, backtest_nb.C_VAL]
            value = gstate[e, backtest_nb.G_CASH] + held
            w = held / value if value > 0 else 0.0
        out[e, k] = w


@njit(cache=True, inline="always")
def step_env_nb(e, action, mode, direction, fees, slippage, gran, risk_penalty, kind,
                close, features, include_position, cstate, gstate, counts, rec_o, rec_t,
                rows, ends, prev, obs, reward, terminated, truncated):
    """One step of environment ``e``: trade at the close of its row, move to the next row,
    write the reward, the end flags and the next observation. Returns the new value.

    The episode terminates when the value falls to or below zero and is truncated at
    row ``ends[e]``.
    """
    row = rows[e]
    trade_nb(e, float(row), mode, action, close[row], direction, fees, slippage, gran,
             cstate, gstate, counts, rec_o, rec_t)
    row += 1
    rows[e] = row
    value = value_nb(e, close[row], cstate, gstate)
    reward[e] = reward_nb(value, prev[e], kind, risk_penalty)
    prev[e] = value
    terminated[e] = value <= 0
    truncated[e] = row >= ends[e] and not terminated[e]
    write_obs_nb(e, row, features, cstate, gstate, include_position, obs)
    return value


@njit(cache=True)
def mix_nb(seed, e, episode):
    """A well-mixed uint64 of (seed, env, episode): splitmix64's finaliser."""
    z = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
    z ^= np.uint64(e) * np.uint64(0xBF58476D1CE4E5B9) + np.uint64(episode)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True)
def draw_start_nb(seed, e, episode, lo, hi):
    """A start row in ``lo..hi`` (inclusive) drawn from (seed, env, episode)."""
    return lo + np.int64(mix_nb(seed, e, episode) % np.uint64(hi - lo + 1))


@njit(cache=True, parallel=True)
def vec_reset_nb(starts, seed, episodes, lo, hi, length, init_cash, close, features,
                 include_position, cstate, gstate, counts, rows, ends, prev, obs):
    """Start every environment ``e`` at row ``starts[e]`` (-1: a row drawn by
    :func:`draw_start_nb` from ``lo[e]..hi[e]``) for ``length`` steps."""
    for e in prange(starts.shape[0]):
        start = starts[e]
        if start < 0:
            start = draw_start_nb(seed, e, episodes[e], lo[e], hi[e])
        reset_env_nb(e, start, init_cash, close, cstate, gstate, counts, rows, prev)
        ends[e] = start + length
        write_obs_nb(e, start, features, cstate, gstate, include_position, obs)


@njit(cache=True, parallel=True)
def vec_step_nb(actions, mode, direction, fees, slippage, gran, risk_penalty, kind, close,
                features, include_position, init_cash, length, lo, hi, seed, episodes,
                cstate, gstate, counts, rec_o, rec_t, rows, ends, prev, obs, reward,
                terminated, truncated, value_out, fees_out, final_obs):
    """:func:`step_env_nb` for every environment at once (``prange`` over them).

    ``value_out[e]`` and ``fees_out[e]`` get each environment's value and episode fees
    after its step. An environment whose episode ends copies its last observation to
    ``final_obs[e]`` and starts a new episode of ``length`` steps at a row drawn by
    :func:`draw_start_nb` from ``lo[e]..hi[e]`` (its ``episodes[e]``-th draw); ``obs[e]``
    is then the new episode's first observation.
    """
    for e in prange(actions.shape[0]):
        value_out[e] = step_env_nb(e, actions[e], mode, direction, fees[e], slippage[e],
                                   gran[e], risk_penalty, kind, close, features,
                                   include_position, cstate, gstate, counts, rec_o, rec_t,
                                   rows, ends, prev, obs, reward, terminated, truncated)
        fees_out[e] = gstate[e, backtest_nb.G_FEES]
        if terminated[e] or truncated[e]:
            for j in range(obs.shape[1]):
                final_obs[e, j] = obs[e, j]
            episodes[e] += 1
            start = draw_start_nb(seed, e, episodes[e], lo[e], hi[e])
            reset_env_nb(e, start, init_cash, close, cstate, gstate, counts, rows, prev)
            ends[e] = start + length
            write_obs_nb(e, start, features, cstate, gstate, include_position, obs)
