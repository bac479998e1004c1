"""ITI-18 Registry Stored Query: parameter tables, checker and index-backed engine (no SOAP)."""
from registry.query.definitions import BY_NAME, QUERIES, StoredQuery
from registry.query.engine import LEAF_CLASS, OBJECT_REF, QueryResult, run_stored_query
from registry.query.params import Param, Params, check_params

__all__ = ["BY_NAME", "QUERIES", "StoredQuery", "LEAF_CLASS", "OBJECT_REF", "QueryResult", "run_stored_query",
           "Param", "Params", "check_params"]
