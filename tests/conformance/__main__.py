"""python -m tests.conformance --registry-url URL --repository-url URL [...]"""
from __future__ import annotations

import argparse
import sys

from tests.conformance import kit
from tests.conformance.runner import DEFAULT_REPOSITORY_UID, run_tests


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.conformance",
                                 description="Replay the NIST XDS Toolkit registry/repository "
                                             "tests against live endpoints.")
    ap.add_argument("--registry-url", required=True)
    ap.add_argument("--repository-url", required=True)
    ap.add_argument("--tests", nargs="+", metavar="ID")
    ap.add_argument("--collection", choices=["R.b", "SQ.b", "PR.b", "Ret.b"])
    ap.add_argument("--repository-unique-id", default=DEFAULT_REPOSITORY_UID)
    ap.add_argument("--patient-feed", metavar="'COMMAND {pid}'",
                    help="shell command making a patient known; {pid} is replaced "
                         "(quoted). Default: none, the registry accepts any patient.")
    ap.add_argument("--uid-root", help="OID root of the fresh uniqueIds of this run")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)
    if not kit.tests_dir().is_dir():
        print(f"NIST test kit not found at {kit.tests_dir()} (set XDS_SHARED_DIR)",
              file=sys.stderr)
        return 2

    def show(r):
        print(r.line, flush=True)

    results = run_tests(args.tests, args.registry_url, args.repository_url,
                        collection=args.collection,
                        repository_unique_id=args.repository_unique_id,
                        patient_feed=args.patient_feed, uid_root=args.uid_root,
                        verbose=args.verbose, log=lambda s: print(s, flush=True),
                        on_result=show)
    passed = sum(r.status == "PASS" for r in results)
    failed = sum(r.status == "FAIL" for r in results)
    skipped = sum(r.status == "SKIP" for r in results)
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
