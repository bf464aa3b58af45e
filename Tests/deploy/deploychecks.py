"""What the deployment checks share: counted checks, durations as the binaries read them, the
variables a binary documents, and a check-config run with its report parsed."""
import os
import re
import subprocess
import sys

results = {"passed": 0, "failed": 0}


def check(condition: bool, what: str) -> bool:
    results["passed" if condition else "failed"] += 1
    print(("ok   " if condition else "FAIL ") + what)
    return condition


def finish() -> None:
    print(f"{results['passed']} passed, {results['failed']} failed")
    sys.exit(1 if results["failed"] else 0)


def seconds(text) -> float:
    """A duration (500ms, 30s, 5m, 1h, seconds) or check-config's report of one, in seconds."""
    text = str(text).strip().lower().split(" ")[0]
    for suffix, factor in (("ns", 1e-9), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600)):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * factor
    return float(text)


def documented_names(binary: str) -> set:
    help_text = subprocess.run([binary, "serve", "--help"], capture_output=True, text=True).stdout
    return set(re.findall(r"\[([A-Z][A-Z0-9_]+)[,\]]", help_text))


def check_config(binary: str, arguments: list, environment: dict):
    """Runs `binary check-config ARGUMENTS` with ENVIRONMENT over a clean base (none of the
    machine's PASSSAGE_/XS3_ variables); returns the process and its `key: value` report."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PASSSAGE_", "XS3_"))}
    run = subprocess.run([binary, "check-config", *arguments], env={**base, **environment},
                         capture_output=True, text=True)
    report = dict(line.split(": ", 1) for line in run.stdout.splitlines() if ": " in line)
    return run, report
