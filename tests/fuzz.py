"""``make test-fuzz``: schemathesis against ``/api/openapi.json`` with a valid token of every role.

The API runs as in production (gunicorn) on a database of its own (``<database>_fuzz``, with London's
boroughs); rate limits are set high so that the fuzzer meets the validation, not the limiter. For each
role schemathesis generates requests from the OpenAPI document (its examples, coverage and fuzzing
phases) and checks every response: no 5xx (``not_a_server_error``), and status code, content type and
body as documented. Schemathesis lives in a virtualenv of its own (.venv-fuzz: its pins are not the
app's). Prints the cases run and the failures per role; exits non-zero on any failure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from backend.devserver import free_port, scratch_database, start_api
from backend.devtokens import emulator_token

ROOT = Path(__file__).resolve().parent.parent
CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"
ROLES = {
    "commuter": {},
    "council": {"role": "council", "council": "E09000028"},
    "safety_team": {"role": "safety_team"},
    "admin": {"role": "admin"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--st", default=str(ROOT / ".venv-fuzz" / "bin" / "st"), help="the schemathesis command")
    parser.add_argument("--max-examples", type=int, default=50, help="per operation and phase")
    parser.add_argument("--seed", type=int, default=2026)
    args = parser.parse_args()

    url, _ = scratch_database(os.environ["DATABASE_URL"], "fuzz")
    subprocess.run([str(Path(sys.executable).parent / "safetravel"), "councils", "load"], check=True,
                   env={**os.environ, "DATABASE_URL": url}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    redis_url = os.environ["REDIS_URL"].rsplit("/", 1)[0] + "/4"
    port = free_port()
    api = start_api(url, redis_url, port)
    totals = {"cases": 0, "failures": 0, "errors": 0}
    try:
        with tempfile.TemporaryDirectory(prefix="safetravel-fuzz-") as tmp:
            for role, claims in ROLES.items():
                token = emulator_token(f"fuzz-{role}", **claims)  # an hour, as Firebase's
                report = Path(tmp) / f"{role}.json"
                subprocess.run([args.st, "run", f"http://127.0.0.1:{port}/api/openapi.json",
                                "-H", f"Authorization: Bearer {token}", "-c", CHECKS,
                                "-n", str(args.max_examples), "--seed", str(args.seed),
                                "--phases", "examples,coverage,fuzzing", "--report-json-path", str(report)],
                               cwd=tmp, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                result = json.loads(report.read_text())
                cases = result["test_cases"]["generated"]
                failures, errors = result["test_cases"]["with_failures"], len(result["errors"])
                totals["cases"] += cases
                totals["failures"] += failures
                totals["errors"] += errors
                print(f"{role:12} {cases:>6,} cases  {failures} with failures  {errors} errors")
                for failure in result["failures"][:10]:
                    print("   ", json.dumps(failure)[:400])
    finally:
        os.killpg(api.pid, 15)
        api.wait(timeout=30)
    print(f"{'all roles':12} {totals['cases']:>6,} cases  {totals['failures']} with failures  {totals['errors']} errors "
          f"(checks: {CHECKS})")
    if totals["failures"] or totals["errors"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
