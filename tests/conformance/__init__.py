"""Conformance replay harness for the NIST XDS Toolkit registry/repository tests.

    python -m tests.conformance --registry-url URL --repository-url URL
"""
from tests.conformance.runner import TestResult, run_tests  # noqa: F401
