"""Models: labels, purged walk-forward validation, versioned bundles, signals, streaming.

Typical flow (hourly bars of the sample market)::

    X = atl.features.technical(bars)
    y = atl.models.labels(bars, horizon=4, threshold=0.5, vol_window=24)
    X, y = atl.models.align(X, y)
    bundle = atl.models.train(X, y, estimator, n_splits=5, embargo="1D")
    atl.models.save_bundle(bundle, "runs/model.atlb")
    bundle = atl.models.load_bundle("runs/model.atlb")
    sig = atl.models.signals(bundle, atl.features.technical(new_bars), threshold=0.55)
    pf = sig.backtest(atl.data.to_wide(new_bars, "close"), fees=0.001)

>>> import alphatrade_lab as atl
>>> sorted(atl.models.LabelSpec().to_dict())[:3]
['horizon', 'kind', 'lower']
"""

from alphatrade_lab.models.bundle import (
    BUNDLE_FORMAT,
    BUNDLE_VERSION,
    NAN_POLICIES,
    TRUSTED_TYPES,
    BundleIntegrityError,
    FeatureMismatchWarning,
    LegacyBundleWarning,
    ModelBundle,
    UntrustedBundleError,
    VersionMismatchWarning,
    load_bundle,
    save_bundle,
)
from alphatrade_lab.models.experiment import (
    DEFAULT_CONFIG,
    Experiment,
    build_estimator,
    describe_estimator,
    merge_config,
    run_experiment,
)
from alphatrade_lab.models.labels import LabelSpec, align, labels
from alphatrade_lab.models.signals import (
    Signals,
    direction_from_argmax,
    direction_from_proba,
    signals,
)
from alphatrade_lab.models.streaming import StreamingScorer
from alphatrade_lab.models.validation import (
    Fold,
    classification_metrics,
    purged_splits,
    train,
)

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_VERSION",
    "DEFAULT_CONFIG",
    "NAN_POLICIES",
    "TRUSTED_TYPES",
    "BundleIntegrityError",
    "Experiment",
    "FeatureMismatchWarning",
    "Fold",
    "LabelSpec",
    "LegacyBundleWarning",
    "ModelBundle",
    "Signals",
    "StreamingScorer",
    "UntrustedBundleError",
    "VersionMismatchWarning",
    "align",
    "build_estimator",
    "classification_metrics",
    "describe_estimator",
    "direction_from_argmax",
    "direction_from_proba",
    "labels",
    "load_bundle",
    "merge_config",
    "purged_splits",
    "run_experiment",
    "save_bundle",
    "signals",
    "train",
]
