"""The research job behind ``alphatrade-lab demo``, one module per step.

Every step has the signature ``step(ctx: Context) -> StepResult``: it reads the run's
inputs and earlier steps' results from ``ctx``, records what belongs in the lab store
through :class:`~alphatrade_lab.store.LabStore`, and returns report lines with the frames
and figures behind them (see :mod:`alphatrade_lab.pipeline.steps`).

>>> from alphatrade_lab import pipeline
>>> list(pipeline.STEPS)
['market', 'backtest', 'risk', 'sweep', 'model', 'drift']
"""

from alphatrade_lab.pipeline.backtest import backtest_step
from alphatrade_lab.pipeline.drift import drift_step
from alphatrade_lab.pipeline.market import market_step
from alphatrade_lab.pipeline.model import experiment_report, model_step
from alphatrade_lab.pipeline.risk import risk_step
from alphatrade_lab.pipeline.run import STEPS, run_demo
from alphatrade_lab.pipeline.steps import Context, StepResult, md_table, new_run_dir
from alphatrade_lab.pipeline.sweep import sweep_step

__all__ = [
    "STEPS",
    "Context",
    "StepResult",
    "backtest_step",
    "drift_step",
    "experiment_report",
    "market_step",
    "md_table",
    "model_step",
    "new_run_dir",
    "risk_step",
    "run_demo",
    "sweep_step",
]
