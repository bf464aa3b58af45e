#!/usr/bin/env python3
"""Checks that the image's runtime stage carries every shared library the binaries load.

We cannot build images here, so the binaries are built as the Dockerfile builds them (release,
--static-swift-stdlib) on a machine of the runtime stage's Debian release, and each library
`ldd` resolves is traced to its Debian package (`dpkg -S`). Every package must be one the
Dockerfile's runtime stage installs (the apt-get line after its RUNTIME-PACKAGES comment) or
libc6, which every Debian image has. A library `ldd` cannot find fails the check.

Usage: check_runtime_libraries.py DOCKERFILE BINARY...
"""
import os
import re
import subprocess
import sys

ALWAYS_PRESENT = {"libc6"}


def runtime_packages(dockerfile: str) -> set:
    text = open(dockerfile).read()
    marker = text.index("RUNTIME-PACKAGES")
    match = re.search(r"apt-get install[^\n]*?--no-install-recommends((?:[^\n&]|\\\n)*)", text[marker:])
    if not match:
        sys.exit(f"{dockerfile}: no apt-get install line after RUNTIME-PACKAGES")
    return {word for word in match.group(1).split() if not word.startswith("-") and word != "\\"}


def libraries(binary: str) -> list:
    output = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    found = []
    for line in output.splitlines():
        line = line.strip()
        if "not found" in line:
            found.append((line.split()[0], None))
        elif "=>" in line:
            name, rest = line.split("=>", 1)
            path = rest.split("(")[0].strip()
            if path:
                found.append((name.strip(), path))
        elif line.startswith("/"):
            found.append((line.split()[0], line.split()[0]))  # the dynamic loader itself
    return found


def package_of(path: str) -> str:
    for candidate in (path, os.path.realpath(path)):
        result = subprocess.run(["dpkg", "-S", candidate], capture_output=True, text=True)
        if result.returncode == 0:
            return result.stdout.split(":", 1)[0].strip()
        # usr-merge: /lib/x86_64-linux-gnu/... is packaged as /usr/lib/... or the other way round
        alternate = candidate[4:] if candidate.startswith("/usr/") else "/usr" + candidate
        result = subprocess.run(["dpkg", "-S", alternate], capture_output=True, text=True)
        if result.returncode == 0:
            return result.stdout.split(":", 1)[0].strip()
    return ""


def main() -> None:
    dockerfile, binaries = sys.argv[1], sys.argv[2:]
    installed = runtime_packages(dockerfile) | ALWAYS_PRESENT
    problems, passed = [], 0
    for binary in binaries:
        for name, path in libraries(binary):
            if path is None:
                problems.append(f"{binary}: {name} not found by ldd")
                continue
            package = package_of(path)
            if not package:
                problems.append(f"{binary}: {name} ({path}) belongs to no Debian package")
            elif package not in installed:
                problems.append(f"{binary}: {name} comes from {package}, which the runtime stage does not install")
            else:
                passed += 1
                print(f"{os.path.basename(binary)}: {name} from {package}: installed")
    for problem in problems:
        print(problem)
    print(f"runtime packages: {' '.join(sorted(installed))}")
    print(f"{passed} passed, {len(problems)} failed")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
