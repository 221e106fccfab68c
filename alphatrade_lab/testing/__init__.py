"""Test helpers, public so that users can check their own work too.

- :func:`assert_no_lookahead` (and :func:`perturb_after`): the leakage harness, which
  checks that a function of bars never lets data after a time t change an output known
  at or before t.
- :class:`LocalReceiver` (with :class:`Reply`, :class:`Received`): a local HTTP server on
  127.0.0.1 that impersonates the Telegram, Discord and webhook endpoints.
- :class:`LocalRedis`: a real ``redis-server`` on 127.0.0.1 in a temporary folder.
- :class:`LocalPostgres`: a real PostgreSQL server (``initdb`` + ``pg_ctl``) on 127.0.0.1
  in a temporary folder.
"""

from alphatrade_lab.testing.alpaca_server import LocalAlpaca
from alphatrade_lab.testing.exchange_server import LocalExchange
from alphatrade_lab.testing.lookahead import assert_no_lookahead, perturb_after
from alphatrade_lab.testing.newsapi_server import LocalNewsAPI
from alphatrade_lab.testing.postgres import LocalPostgres
from alphatrade_lab.testing.receiver import LocalReceiver, Received, Reply
from alphatrade_lab.testing.redis import LocalRedis

__all__ = ["LocalAlpaca", "LocalExchange", "LocalNewsAPI", "LocalPostgres", "LocalReceiver",
           "LocalRedis", "Received", "Reply", "assert_no_lookahead", "perturb_after"]
