"""Redaction: no false positives on the project's own text, no leaks of real secret shapes.

The two corpora below are the contract: HARMLESS holds text this project emits (feature
names, drift and risk alert lines, log messages, parameter dicts, error messages) and must
come back unchanged; SECRETS holds real credential shapes and none of each secret (nor any
8-character piece of it) may survive. Keys: harmless keys are kept, secret keys redacted.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

import alphatrade_lab as atl
from alphatrade_lab.errors import DataError
from alphatrade_lab.redact import (
    REDACTED,
    is_secret_key,
    known_secrets,
    redact,
    redact_truncate,
    register_secret,
)
from alphatrade_lab.store import LabStore

HARMLESS = [
    "macd_signal: drifted by psi 0.31",
    "[WARNING] Drift Alert: macd_signal: drifted by psi 0.31 > 0.2 | feature=macd_signal",
    "Drift Alert: rsi_14",
    "drifted by psi 0.31 > 0.2; ks p-value 0.001 < 0.05",
    "sigma=0.2",
    "design: walk-forward",
    "n_tokens=512",
    "token budget exceeded: n_tokens=4096 > max_tokens=2048, tokenizer=bpe",
    "Risk Alert: max_drawdown",
    "Current value: 12.34%, threshold 10.00% exceeded",
    "[CRITICAL] Risk Alert: daily_loss: Current value: 6.00%, threshold 5.00% exceeded | "
    "limit=daily_loss, portfolio=main, severity=critical, time=2024-01-02T00:00:00+00:00, "
    "value=0.06, threshold=0.05",
    "signal=1, confidence=0.73, model_type=lgbm, was_executed=True",
    "features_hash=3f2a9c0d1e4b5a6f7788aa99bbccddee",
    "ma_dist_200: 0.0123, bb_pctb_20: 0.91, volume_z_20: -1.2, atr_14: 3.4",
    "vol_20=0.012 vol_60=0.015 skew_60=-0.3 hl_range=0.02 ret_1=0.001 ret_60=-0.02",
    "fast=10, slow=50, fees=0.001, slippage=0.0, init_cash=100.0, direction=longonly",
    "{'fast': 10, 'slow': 50, 'signal_window': 9, 'sigma': 2.0}",
    '{"window": 20, "method": "psi", "threshold": 0.2, "feature": "macd_signal"}',
    "author: Jane Doe",
    "webhook_enabled=False, telegram_enabled=True",
    "alert sink discord delivers again",
    "Telegram alerts are off: set both TELEGRAM_BOT_TOKEN and TELEGRAM_CHAT_ID",
    "alert 'Drift Alert: rsi_14' not delivered: discord: HTTP 404: "
    '{"message": "Unknown Webhook", "code": 10015} after 1 attempt',
    "trades: column 'entry_time' row 7 (index 7) is '2024-13-01'; expected a timestamp",
    "data/bars.csv: column 'close' row 12 [symbol 'AAA', timestamp 2024-01-01 00:00:00+00:00]"
    ": NaN is not allowed",
    "https://api.telegram.org",
    "http://127.0.0.1:8000/dashboard",
    "GET /api/runs?limit=10&kind=backtest&symbol=BTC-USD",
    "sorted by (symbol, timestamp): 12 of 500 rows moved",
    "signals: column 'direction' row 3 (index 3) is 2; allowed: -1, 0, 1",
    "dedupe key=('warning', 'Drift Alert: rsi_14', '')",
    "primary_key: run_id, sort_key: timestamp",
    "passed: 41, failed: 0, pass_rate: 1.0",
    "sig_level=0.05, significance: 0.01, signals: 120",
    "user@example.com wrote the note",
    "the webhook responded 204; password reset is not supported",
    "model_version=lgbm-2024.06.01, strategy=ma_cross, kind=backtest",
    "walk-forward: 5 folds, purge=2, embargo=1, design=expanding",
    "run 3f9a2c1b7d8e4f60a1b2c3d4e5f60718 recorded: 2500 trades, 120 daily rows",
    "drift_stats: feature=rsi_14 method=ks statistic=0.21 p_value=0.003 drifted=True",
]

HARMLESS_KEYS = [
    "author", "max_tokens", "n_tokens", "webhook_enabled", "signal", "macd_signal", "sigma",
    "design", "tokenizer", "token_count", "sig_level", "significance", "signal_window",
    "passed", "pass_rate", "authored_by", "key", "keys", "sort_key", "cache_key",
    "public_key", "primary_key", "keyword", "webhook_count", "webhook_name", "auth_enabled",
    "telegram_enabled", "api_base", "TELEGRAM_API_BASE", "DISCORD_API_BASE", "api_version",
    "feature", "method", "threshold", "drifted", "symbol", "run_id", "model_version",
    "strategy", "session_length", "tokens", "secretary", "password_min_length",
]

SECRET_KEYS = [
    "api_key", "apiKey", "APIKey", "x-api-key", "X-Api-Key", "bot_token", "botToken",
    "password", "db_password", "passwd", "pwd", "secret", "client_secret", "DISCORD_WEBHOOK",
    "TELEGRAM_BOT_TOKEN", "ALERT_WEBHOOK_URL", "webhook_url", "authorization",
    "Authorization", "Proxy-Authorization", "private_key", "privateKey", "access_token",
    "accessToken", "refresh_token", "AWS_SECRET_ACCESS_KEY", "secret_key", "STRIPE_API_KEY",
    "chat_id", "TELEGRAM_CHAT_ID", "session_id", "cookie", "credentials", "passphrase",
    "dsn", "signature", "auth", "jwt", "id_token", "webhook", "slack_webhook_url",
    "hook_url", "DB_PASSWORD", "EXCHANGE_API_KEY",
]

TG = "123456789:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T0"
DC = "Abc-DEF_ghiJKLmnoPQRstuVWXyz0123456789abcdefGHIJKLmnopQRSTuvWXyz01234"
PEM_BODY = ("MIIEpAIBAAKCAQEA3Tz2mr7SZiAMfQyuvBjM9OiJjRazXBZ1BjP5CE/Wm/Rr500P\n"
            "RK+Lh9x5eJPo5CAZ3/ANBE0sTK0ZsDGMak2m1g7nHYVdE7LBQ2Nt5mSuKm9Lk0P")
SECRETS = [  # (text, the secret in it)
    (f"getMe with {TG} rejected", TG),
    (f"POST https://api.telegram.org/bot{TG}/sendMessage failed", TG),
    (f"https://discord.com/api/webhooks/112233445566778899/{DC}", DC),
    (f"POST https://discord.com/api/v10/webhooks/112233445566778899/{DC} -> 404", DC),
    (f"https://discordapp.com/api/v9/webhooks/1122334455/{DC}?wait=true", DC),
    ("https://hooks.slack.com/services/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",
     "q1W2e3R4t5Y6u7I8o9P0aSdF"),
    ("charge failed with key sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    ("config {'api_key': 'sk_live_51HvQ2kLmN0pQrStUvWxYz'}", "sk_live_51HvQ2kLmN0pQrStUvWxYz"),
    ("params={'api_key': 'q8Zr2LmN4vBx7TyW', 'n': 3}", "q8Zr2LmN4vBx7TyW"),
    ('{"api_key": "Zp3Kq9Lm2Wx8Vb7N", "n": 3}', "Zp3Kq9Lm2Wx8Vb7N"),
    ('body="{\\"password\\": \\"Gh7Kd92LmQ\\"}"', "Gh7Kd92LmQ"),
    ("aws key AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE"),
    ("AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
     "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
    ("clone with ghp_16C7e42F292c6912E7710c838347Ae178B4a",
     "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
    ("jwt eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
     "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
     "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0."
     "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
    ("Authorization: Bearer 9f8e7d6c5b4a39281706f5e4d3c2b1a0", "9f8e7d6c5b4a39281706f5e4d3c2b1a0"),
    ("Authorization: Bearer abc123", "abc123"),
    ("sent header Bearer x9Q", "x9Q"),
    ("postgresql://trader:S3cr3tP4ss@db.internal:5432/lab", "S3cr3tP4ss"),
    ("git pull https://x7Kp2Qm9Lr4Tz8Wb@git.example.com/repo.git", "x7Kp2Qm9Lr4Tz8Wb"),
    ("GET https://api.example.com/v1/bars?symbol=AAA&token=Qw3Er5Ty7Ui9Op1A", "Qw3Er5Ty7Ui9Op1A"),
    ("GET https://api.example.com/v1/bars?api_key=Lm4Nb6Vc8Xz0As2D&limit=5", "Lm4Nb6Vc8Xz0As2D"),
    ("https://maps.example.com/geo?key=Pk8Jh6Gf4Ds2Aq0W", "Pk8Jh6Gf4Ds2Aq0W"),
    ("login password=hunter2x failed", "hunter2x"),
    ('connect(password="hunter 2 horse")', "hunter 2 horse"),
    ("password: 'Tr0ub4dor&3'", "Tr0ub4dor&3"),
    ("mysql -u root pwd=Xy7!kLm2q", "Xy7!kLm2q"),
    (f"-----BEGIN RSA PRIVATE KEY-----\n{PEM_BODY}\n-----END RSA PRIVATE KEY-----", PEM_BODY),
    (f"key file: -----BEGIN PRIVATE KEY-----\n{PEM_BODY}", PEM_BODY),
    ("xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
     "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"),
    ("OAuth(client_id='abc', client_secret='Cs9Lk2Mn4Bv6')", "Cs9Lk2Mn4Bv6"),
    ("alphatrade-lab paper --password=Fl4gP4ssw0rd", "Fl4gP4ssw0rd"),
    ("chat_id=-1001234567890", "-1001234567890"),
    (f"DISCORD_WEBHOOK=https://discord.com/api/webhooks/1/{DC}", DC),
    ("webhook_url: https://example.com/hooks/Wh8Kq2Lm5Nz7Xc", "Wh8Kq2Lm5Nz7Xc"),
    ("maps key AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q", "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q"),
    ("OPENAI key sk-proj-Ab12Cd34Ef56Gh78Ij90KlMn", "sk-proj-Ab12Cd34Ef56Gh78Ij90KlMn"),
    ("Cookie: sessionid=8f7e6d5c4b3a2910", "8f7e6d5c4b3a2910"),
    ("{'bot_token': 'A1b2C3d4E5f6G7h8'}", "A1b2C3d4E5f6G7h8"),
    ("X-Api-Key: Hk3Jd8Sk2Lm9", "Hk3Jd8Sk2Lm9"),
    ("Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
    ("https://bucket.s3.amazonaws.com/f?X-Amz-Credential=cred123456%2F20240101&"
     "X-Amz-Signature=ab12cd34ef56ab12cd34ef56", "ab12cd34ef56ab12cd34ef56"),
    ("hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567 pushed", "hf_AbCdEfGhIjKlMnOpQrStUvWxYz01234567"),
]


def leaked(out: str, secret: str) -> bool:
    """The secret, or any 8-character piece of it, is in ``out``."""
    return secret in out or any(secret[i:i + 8] in out for i in range(len(secret) - 7))


def test_the_corpora_are_large_enough():
    assert len(HARMLESS) >= 30 and len(SECRETS) >= 30
    assert len(HARMLESS_KEYS) >= 30 and len(SECRET_KEYS) >= 30


def test_harmless_text_comes_back_unchanged():
    changed = {h: redact(h) for h in HARMLESS if redact(h) != h}
    assert changed == {}


def test_no_secret_shape_leaks():
    leaks = {t: redact(t) for t, s in SECRETS if leaked(redact(t), s)}
    assert leaks == {}
    assert all(REDACTED in redact(t) for t, _ in SECRETS)


def test_redaction_is_idempotent():
    for text, _ in SECRETS:
        once = redact(text)
        assert redact(once) == once


def test_harmless_keys_are_kept_and_secret_keys_redacted():
    value = "v4lue-Of-Some-Length"
    kept = redact(dict.fromkeys(HARMLESS_KEYS, value))
    assert kept == dict.fromkeys(HARMLESS_KEYS, value)
    assert not [k for k in HARMLESS_KEYS if is_secret_key(k)]
    gone = redact({k: value for k in SECRET_KEYS})
    assert gone == dict.fromkeys(SECRET_KEYS, REDACTED)


def test_nested_values_keep_their_shape():
    value = {"params": {"fast": 10, "webhook_enabled": False, "api_key": "Rk2Lp9Vz3Qm8",
                        "chat_id": 123456789, "auth": None},
             "log": ["sent with Bearer Zt9Kq2", ("password='Yu7 Hn3'", 3)]}
    out = redact(value)
    assert out == {"params": {"fast": 10, "webhook_enabled": False, "api_key": REDACTED,
                              "chat_id": REDACTED, "auth": None},
                   "log": [f"sent with Bearer {REDACTED}", (f"password='{REDACTED}'", 3)]}


def test_known_environment_secrets_are_redacted_exactly(monkeypatch):
    secret = "Zk4tRw8Qp2Lx6VnB"   # no recognisable shape: only the environment knows it
    text = f"exchange rejected the order (key {secret}) at 10:02"
    assert redact(text) == text
    monkeypatch.setenv("ACME_EXCHANGE_API_KEY", secret)
    assert redact(text) == f"exchange rejected the order (key {REDACTED}) at 10:02"
    assert secret in known_secrets()
    monkeypatch.delenv("ACME_EXCHANGE_API_KEY")
    assert redact(text) == text          # the environment is read at redaction time
    monkeypatch.setenv("PWD", "/work/some-directory")   # a directory, not a password
    assert redact("wrote /work/some-directory/report.html") == \
        "wrote /work/some-directory/report.html"


def test_the_webhook_in_the_environment_is_redacted_by_its_parts(monkeypatch):
    token = "EnvWebhookTokenQ1w2E3r4T5y6U7i8O9p0"
    monkeypatch.setenv("ALERT_WEBHOOK_URL", f"https://alerts.example.com/in/{token}")
    assert redact(f"ingest rejected path /in/{token}") == f"ingest rejected path {REDACTED}"
    assert redact(f"token was {token}") == f"token was {REDACTED}"


def test_registered_secrets_are_redacted_everywhere():
    secret = "reg1stered-Passphr4se-77"
    register_secret(secret, None, "", "short")
    assert redact({"note": f"login with {secret} failed", "list": [secret]}) == \
        {"note": f"login with {REDACTED} failed", "list": [REDACTED]}
    assert "short" not in known_secrets()     # too short to redact without mangling text


def test_truncation_redacts_first_so_a_cut_secret_leaves_no_prefix():
    tg = "987654321:AAGx7Qw3Er5Ty7Ui9Op1As3Df5Gh7Jk9Lz"
    for pad in range(150, 200, 7):       # the token straddles the cut at 200
        body = "e" * pad + f" rejected bot{tg} because"
        out = redact_truncate(body, 200)
        assert not leaked(out, tg) and not any(tg[:k] in out for k in range(8, len(tg)))
        assert len(out) <= 200 + len(REDACTED) + 1
    # the same cut without redacting first (what the 4xx handling did) leaks a prefix
    cut = ("e" * 160 + f" rejected bot{tg}")[:200]
    assert tg[:20] in redact(cut)
    # a body that arrived already cut in the middle of a known secret
    secret = "AnotherKnown-Secret-ValueX1"
    register_secret(secret)
    assert redact_truncate(f"upstream said {secret[:11]}", 200) == f"upstream said {REDACTED}"
    # the marker itself is never cut in half
    assert redact_truncate("a" * 195 + f" {secret}", 200).endswith(REDACTED + "…")


def test_data_error_messages_are_redacted(monkeypatch):
    secret = "Dq8Lm2Zx5Wc7Vb3N"
    monkeypatch.setenv("FEED_TOKEN", secret)
    exc = DataError(f"bars.csv: column 'symbol' row 3 is {secret!r}", 3)
    assert secret not in str(exc) and secret not in repr(exc) and exc.args[1] == 3
    assert REDACTED in str(exc)


@pytest.mark.parametrize("how", ["environment", "registered"])
def test_load_does_not_echo_a_secret_from_a_data_cell(tmp_path, monkeypatch, how):
    secret = f"Cell{how.capitalize()}Secret9x7Q"
    if how == "environment":
        monkeypatch.setenv("DATA_VENDOR_PASSWORD", secret)
    else:
        register_secret(secret)
    path = tmp_path / "bars.csv"
    path.write_text("timestamp,symbol,open,high,low,close,volume\n"
                    "2024-01-01T00:00:00Z,AAA,10,11,9,10.5,100\n"
                    f"2024-01-01T00:00:00Z,{secret},10,11,9,-10.5,100\n")
    with pytest.raises(DataError) as info:
        atl.data.load(path)
    text = str(info.value) + repr(info.value)
    assert "bars.csv" in text and secret not in text and REDACTED in text


def test_every_stored_text_column_is_redacted(tmp_path):
    tg = "123456789:AAHfiqksKZ8WmR2zSjiQ7_v4TMAKdiHm9T1"
    hook = "https://discord.com/api/v10/webhooks/42/StoredHookTokenA1b2C3d4E5f6G7h8"
    store = LabStore(tmp_path / "lab.duckdb")
    run = store.record_run(f"live {tg}", {"design": "walk-forward", "sigma": 0.2},
                           code_version="v1 api_key=Cv9Lk2Mn4Bv6Xz",
                           notes="macd_signal: drifted by psi 0.31")
    trades = pd.DataFrame({"symbol": ["AAA"], "side": ["long"], "quantity": [1.0],
                           "entry_time": [pd.Timestamp("2024-01-01", tz="UTC")],
                           "entry_price": [10.0],
                           "metadata": [{"author": "me", "bot_token": tg, "n_tokens": 512}]})
    store.record_trades(trades, run_id=run, strategy=f"ma_cross via {hook}",
                        model_version="lgbm token=StoredTok3nValue99")
    report = pd.DataFrame({"feature": [f"rsi_14 {hook}"], "method": ["psi Bearer Mt5Yh"],
                           "statistic": [0.3], "threshold": [0.2]})
    store.record_drift(report, run_id=run)
    store.close()
    raw = (tmp_path / "lab.duckdb").read_bytes()
    for s in (tg, "StoredHookTokenA1b2C3d4E5f6G7h8", "Cv9Lk2Mn4Bv6Xz", "StoredTok3nValue99",
              "Mt5Yh"):
        assert s.encode() not in raw, s
    store = LabStore(tmp_path / "lab.duckdb")
    t = store.trades(run).iloc[0]
    assert t["strategy"] == f"ma_cross via https://discord.com/api/v10/webhooks/{REDACTED}"
    assert t["model_version"] == f"lgbm token={REDACTED}"
    assert json.loads(t["metadata"]) == {"author": "me", "bot_token": REDACTED, "n_tokens": 512}
    d = store.drift(run).iloc[0]
    assert d["method"] == f"psi Bearer {REDACTED}" and d["feature"].startswith("rsi_14 ")
    r = store.runs(run_id=run).iloc[0]
    assert r["notes"] == "macd_signal: drifted by psi 0.31"      # harmless text kept
    assert json.loads(r["params"]) == {"design": "walk-forward", "sigma": 0.2}
    assert r["kind"] == f"live {REDACTED}"


def test_a_key_column_holding_a_secret_is_refused_not_rewritten():
    store = LabStore(":memory:")
    secret = "sk_live_51KeyColumnSecretAbCdEf"
    trades = pd.DataFrame({"symbol": ["AAA", secret], "side": ["long", "long"],
                           "quantity": [1.0, 1.0],
                           "entry_time": pd.to_datetime(["2024-01-01"] * 2, utc=True),
                           "entry_price": [10.0, 10.0]})
    with pytest.raises(DataError, match=r"trades, column 'symbol', row 1") as info:
        store.record_trades(trades)
    assert secret not in str(info.value)
    assert store.counts()["trades"] == 0


def test_importing_alerts_does_not_load_duckdb():
    code = ("import sys, alphatrade_lab.alerts, alphatrade_lab.redact; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'duckdb'"
            " or m.startswith('alphatrade_lab.store')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120)
    assert out.stdout.strip() == "[]"
