"""The public API is deliberate: each subpackage's ``__all__`` is written out here.

A change to a subpackage's public names fails this test until the list below is updated in
the same commit, so adding, renaming or dropping a public name is a decision, not an
accident. Every listed name must also resolve.
"""

import importlib

import pytest

PUBLIC_API = {
    "alphatrade_lab": [
        "AlphaTradeError", "AlphaTradeWarning", "DataError", "__version__", "alerts", "backtest",
        "data", "errors", "features", "live", "models", "monitoring", "pipeline", "risk",
        "rl", "sentiment", "service", "signals", "store", "testing",
    ],
    "alphatrade_lab.data": [
        "BAR_COLUMNS", "PRICE_COLUMNS", "REGIME_NAMES", "SAMPLE_COMPANIES", "SAMPLE_SEED",
        "SYMBOLS", "bar_length", "load", "load_sample", "plot_bars", "resample", "sample_path",
        "sample_regimes", "summarize", "synthetic", "synthetic_news", "to_wide", "validate",
    ],
    "alphatrade_lab.features": [
        "FeatureSpec", "GRAPH_FEATURES", "GRAPH_METHODS", "NAN_STRATEGIES", "graph",
        "graph_adjacency", "handle_nan", "multi_timeframe", "technical",
    ],
    "alphatrade_lab.rl": [
        "TradingEnv", "VecTradingEnv",
    ],
    "alphatrade_lab.signals": [
        "crossed_above", "crossed_below",
    ],
    "alphatrade_lab.backtest": [
        "Portfolio", "STAT_NAMES", "STRATEGIES", "Strategy", "daily_performance_frame",
        "deflated_sharpe_ratio", "fingerprint", "from_signals", "from_signals_chunked",
        "from_weights", "heatmap", "portfolio_frames", "split_sample", "sweep", "sweep_ma_cross",
        "top_k", "trades_frame",
    ],
    "alphatrade_lab.models": [
        "BUNDLE_FORMAT", "BUNDLE_VERSION", "BundleIntegrityError", "DEFAULT_CONFIG", "Experiment",
        "FeatureMismatchWarning", "Fold", "LabelSpec", "LegacyBundleWarning", "ModelBundle",
        "NAN_POLICIES", "Signals", "StreamingScorer", "TRUSTED_TYPES", "UntrustedBundleError",
        "VersionMismatchWarning", "align", "build_estimator", "classification_metrics",
        "describe_estimator", "direction_from_argmax", "direction_from_proba", "labels",
        "load_bundle", "merge_config",
        "purged_splits", "run_experiment", "save_bundle", "signals", "train",
    ],
    "alphatrade_lab.monitoring": [
        "DEFAULT_THRESHOLDS", "DriftCheck", "DriftResult", "METHODS", "ModelMonitor", "chi_square",
        "drift_alerts", "drift_report", "first_drift", "js_distance", "ks", "ks_pvalue",
        "model_performance_frame", "model_timeline", "plot_rolling_drift", "psi", "rolling_drift",
        "wasserstein",
    ],
    "alphatrade_lab.risk": [
        "BREACH_COLUMNS", "Breach", "INVALID_NAMES", "LIMIT_NAMES", "Limit", "RiskLimits",
        "RiskManager", "SUMMARY_COLUMNS",
    ],
    "alphatrade_lab.pipeline": [
        "Context", "STEPS", "StepResult", "backtest_step", "drift_step", "experiment_report",
        "market_step", "md_table", "model_step", "new_run_dir", "risk_step", "run_demo",
        "sweep_step",
    ],
    "alphatrade_lab.alerts": [
        "Alert", "AlertDeliveryError", "AlertLevel", "AlertManager", "AlertResult",
        "CircuitBreaker", "DiscordAlerter", "LogAlerter", "RateLimiter",
        "Sink", "TelegramAlerter", "WebhookAlerter", "discord_payload", "escape_markdown_v2",
        "format_text", "scrub", "telegram_messages", "webhook_payload",
    ],
    "alphatrade_lab.events": [
        "Alert", "AlertDispatcher", "AlertLevel",
    ],
    "alphatrade_lab.sentiment": [
        # sources, articles and symbols
        "ARTICLE_COLUMNS", "FileSource", "NewsAPISource", "RSSSource", "SKIP_COLUMNS",
        "SKIP_REASONS", "SkipReport", "Skipped", "SymbolMap", "build_articles", "dedupe",
        "empty_articles", "normalize_title", "normalize_url",
        # alignment to bars
        "NEWS_FEATURES", "news_features",
        # the news cache in the lab store
        "cache_query", "fetch_cached",
        # scorers and their evaluation
        "LoughranMcDonaldScorer", "NaiveKeywordScorer", "SENTIMENT_LABELS", "Scorer",
        "VaderScorer", "evaluate_scorers", "label_scores",
    ],
    "alphatrade_lab.testing": [
        "LocalAlpaca", "LocalExchange", "LocalNewsAPI", "LocalPostgres", "LocalReceiver",
        "LocalRedis", "Received", "Reply", "assert_no_lookahead", "perturb_after",
    ],
    "alphatrade_lab.service": [
        "ServiceState", "create_app",
    ],
    "alphatrade_lab.live": [
        "TOPICS", "Account", "AlpacaBroker", "Bar", "BarGuard", "BarSource", "Broker",
        "CCXTBroker", "Engine", "EngineResult", "Event", "EventBus", "FeedEvent", "Fill",
        "Intent", "ModelStrategy", "Order", "OrderRequest", "OrderStatus", "PaperBroker",
        "PollingFeed", "Position", "Reconciliation", "ReplayFeed", "Signal", "SignalStrategy",
        "SpoolingStore", "Strategy", "Subscription", "client_order_id", "fill_delta",
        "order_quantity", "reconcile",
    ],
    "alphatrade_lab.errors": [
        "AlertDeliveryError", "AlphaTradeError", "AlphaTradeWarning", "BrokerError",
        "BrokerUnavailable", "BundleIntegrityError", "DataError", "FeatureMismatchWarning",
        "FeedError", "FeedWarning", "LegacyBundleWarning", "LockTimeout", "NewsSourceError",
        "OrderRejected", "RepairWarning", "SchemaVersionError", "StoreError", "StoreLockedError",
        "StoreUnavailableError", "UnknownNameError", "UntrustedBundleError",
        "VersionMismatchWarning",
    ],
    "alphatrade_lab.store": [
        "LabStore", "MIGRATIONS", "SCHEMA_VERSION", "SchemaVersionError", "StoreError",
        "StoreLockedError", "TABLES", "code_version", "create_table_sql", "migrate",
        "signals_from_wide",
    ],
}


@pytest.mark.parametrize("module", sorted(PUBLIC_API))
def test_all_is_the_frozen_public_api(module):
    names = importlib.import_module(module).__all__
    assert len(names) == len(set(names)), f"{module}.__all__ lists a name twice"
    added = sorted(set(names) - set(PUBLIC_API[module]))
    dropped = sorted(set(PUBLIC_API[module]) - set(names))
    assert not added and not dropped, (
        f"{module}.__all__ changed: added {added}, dropped {dropped}; if that is deliberate, "
        "update PUBLIC_API in tests/test_public_api.py")


@pytest.mark.parametrize("module", sorted(PUBLIC_API))
def test_every_public_name_resolves(module):
    mod = importlib.import_module(module)
    missing = [n for n in mod.__all__ if not hasattr(mod, n)]
    assert not missing, f"{module}.__all__ names {missing}, which the module does not have"


def test_the_top_level_package_lists_every_subpackage():
    import alphatrade_lab as atl

    for name in atl.__all__:
        value = getattr(atl, name)
        if name in atl._SUBPACKAGES:
            assert value.__name__ == f"alphatrade_lab.{name}"

