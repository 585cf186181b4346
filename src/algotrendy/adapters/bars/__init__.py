"""Bar storage adapters for the ``core.market.BarStore`` port, and bar file import.

``duckdb_store.DuckDBBarStore`` is the embedded default (one DuckDB file);
``postgres_store.PostgresBarStore`` is split mode (PostgreSQL, a TimescaleDB hypertable when the
extension is available; needs the ``postgres`` extra). Both keep the same two tables,
``marketdata_bars`` (ts = BIGINT ns UTC) and the ``marketdata_series`` catalog, and pass one
contract suite (tests/contract/test_bar_store.py). ``files.read_bar_file`` reads CSV / gzipped
CSV / Parquet into ``Bars``, all or nothing (``BarFileError`` names the line and column).

Conventions shared by both stores:

* ``ts`` is BIGINT nanoseconds since the epoch, UTC: exactly ``Bars.ts``, so round trips are
  bit-exact (prices are float64 / DOUBLE PRECISION). ``timeframe`` is stored as its canonical
  label (``60m`` is written as ``1h``; both parse to the same ``Timeframe``).
* ``upsert`` returns the number of rows inserted or changed: rewriting identical bars returns
  0 and writes nothing; a revised bar counts 1. It refuses (``core.errors.Invalid``) bars whose
  ``ts`` is not strictly increasing. The catalog row (first/last ts, count) changes in the same
  transaction; its ``asset_type`` is the one given with the latest upsert of the series.
* ``read`` returns time order, ``start`` inclusive, ``end`` exclusive; ``limit=n`` keeps the
  last n bars of the range; an empty or inverted range reads nothing; a negative limit is
  ``Invalid``. ``delete`` returns the number of bars removed and drops the catalog row.
* A closed store raises ``RuntimeError``; an unreachable database raises ``TemporaryError``.
"""

from .duckdb_store import DuckDBBarStore
from .files import BarFileError, read_bar_file
from .postgres_store import PostgresBarStore

__all__ = ["BarFileError", "DuckDBBarStore", "PostgresBarStore", "read_bar_file"]
