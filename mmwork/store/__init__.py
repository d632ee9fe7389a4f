"""The Parquet store: tables on disk, interactions, and item features read back as arrays.

>>> from mmwork.store import table_path
>>> table_path("movielens-100k", "items").name
'items.parquet'
"""
from mmwork.store.tables import list_tables, read_table, table_metadata, table_path, table_schema, write_table

__all__ = ["list_tables", "read_table", "table_metadata", "table_path", "table_schema", "write_table"]
