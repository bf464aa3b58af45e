#!/usr/bin/env python3
"""Validates the compose files with docker-compose and checks what they give the binaries.

For each file, `docker-compose config` must accept it. Then, for every service built from
deploy/docker/Dockerfile, the environment the container would get (the target's ENV lines and the
service's `environment`) is checked against the binary of that target:
- every PASSSAGE_* / XS3_* name is one the binary documents in `serve --help`;
- `check-config` accepts the whole environment (container paths mapped into a scratch directory);
- each timeout arrives as given (compared in seconds with what check-config reports).

Usage: check_compose.py DOCKER_COMPOSE PASSSAGE XS3LERATOR DOCKERFILE COMPOSE_FILE...
Prints one line per check and "N passed, M failed"; exits 1 on any failure.
"""
import os
import re
import subprocess
import sys
import tempfile

import yaml

from deploychecks import check, check_config, documented_names, finish, seconds


def dockerfile_environment(dockerfile: str, target: str) -> dict:
    """ENV lines of the runtime stage and of `target`'s stage."""
    environment, stage = {}, None
    for line in open(dockerfile):
        found = re.match(r"FROM\s+\S+\s+AS\s+(\S+)", line, re.IGNORECASE)
        if found:
            stage = found.group(1)
        elif line.startswith("ENV ") and stage in ("runtime", target):
            for pair in line[4:].split():
                name, _, value = pair.partition("=")
                environment[name] = value
    return environment


def documented_names(binary: str) -> set:
    help_text = subprocess.run([binary, "serve", "--help"], capture_output=True, text=True).stdout
    return set(re.findall(r"\[([A-Z][A-Z0-9_]+)[,\]]", help_text))


def main() -> None:
    compose, passsage, xs3lerator, dockerfile, *files = sys.argv[1:]
    binaries = {"passsage": (passsage, "PASSSAGE_"), "xs3lerator": (xs3lerator, "XS3_")}
    names = {target: documented_names(binary) for target, (binary, _) in binaries.items()}
    scratch = tempfile.mkdtemp(prefix="compose-check-")
    for file in files:
        result = subprocess.run([compose, "-f", file, "config"], capture_output=True, text=True)
        check(result.returncode == 0, f"{file}: docker-compose config accepts it {result.stderr.strip()}")
        if result.returncode != 0:
            continue
        config = yaml.safe_load(result.stdout)
        for service, spec in config.get("services", {}).items():
            target = (spec.get("build") or {}).get("target")
            if target not in binaries:
                continue
            binary, prefix = binaries[target]
            environment = dockerfile_environment(dockerfile, target)
            environment.update({k: str(v) for k, v in (spec.get("environment") or {}).items()})
            ours = {k: v for k, v in environment.items() if k.startswith(prefix)}
            unknown = sorted(set(ours) - names[target])
            check(not unknown, f"{file}: {service}: every {prefix}* variable is one {target} takes {unknown or ''}")
            # The container's paths, inside a scratch directory of ours.
            mapped = {k: (scratch + v if v.startswith("/") else v) for k, v in environment.items()}
            for value in mapped.values():
                if value.startswith(scratch):
                    os.makedirs(os.path.dirname(value) if "." in os.path.basename(value) else value, exist_ok=True)
            run, reported = check_config(binary, [], mapped)
            check(run.returncode == 0, f"{file}: {service}: {target} check-config accepts its environment {run.stderr.strip()}")
            for name, value in ours.items():
                if not (name.endswith("_TIMEOUT") or name.endswith("_GRACE_PERIOD")):
                    continue
                key = name[len(prefix):].lower().replace("_", "-")
                got = reported.get(key, "")
                check(got != "" and seconds(got) == seconds(value),
                      f"{file}: {service}: {name}={value} arrives as {key}: {got}")
    finish()


if __name__ == "__main__":
    main()
