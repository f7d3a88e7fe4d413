"""The contract between stages: Parquet schemas, atomic read/validate/write, evaluation protocols."""

from .io import atomic_write_bytes, atomic_write_text, read_rows, read_table, to_table, write_table
from .protocols import PROTOCOLS, EvalProtocol, FeatureNet, get_protocol, register_protocol
from .schemas import SCHEMA_VERSION, TABLES, table_schema
from . import targets as _targets  # noqa: F401  registers the upper-body target tables

__all__ = [
    "SCHEMA_VERSION",
    "TABLES",
    "PROTOCOLS",
    "EvalProtocol",
    "FeatureNet",
    "atomic_write_bytes",
    "atomic_write_text",
    "get_protocol",
    "read_rows",
    "read_table",
    "register_protocol",
    "table_schema",
    "to_table",
    "write_table",
]
