"""Make the internal callers' credentials (issue 19), for an operator or a deployment script:

    python -m parley_auth.credentials                      # the standard callers
    python -m parley_auth.credentials ops-tool=keys:read   # others: name=scope,scope...

prints one `<name> <credential>` line per caller (give each workload its own, as its
`<PREFIX>_INTERNAL_TOKEN`) and then `AUTH_INTERNAL_CALLERS=<json>` for auth-api (the secrets'
SHA-256 only); with `--secret-literals`, the `--from-literal=...` arguments of the Kubernetes
Secret instead (`internal-credential-<name>` and `internal-sha256-<name>` per caller, see
deploy/k8s/README.md). Fresh 256-bit secrets every run: rotating means running it again and
rolling every caller with auth-api."""

from __future__ import annotations

import argparse
import secrets
import sys

from parley_auth.callers import (
    NAME,
    SCOPES,
    STANDARD_CALLERS,
    callers_json,
    credential,
    secret_sha256,
)


def parse(specs: list[str]) -> dict[str, tuple[str, ...]]:
    callers: dict[str, tuple[str, ...]] = {}
    for spec in specs:
        name, _, scopes = spec.partition("=")
        chosen = tuple(s for s in scopes.split(",") if s)
        if not NAME.match(name) or not chosen or set(chosen) - SCOPES:
            raise ValueError(
                f"{spec!r}: expected name=scope[,scope...] with scopes in {sorted(SCOPES)}"
            )
        callers[name] = chosen
    return callers


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m parley_auth.credentials", description=__doc__)
    parser.add_argument(
        "callers", nargs="*", help="name=scope[,scope...] (default: the standard set)"
    )
    parser.add_argument(
        "--secret-literals", action="store_true", help="kubectl create secret arguments"
    )
    args = parser.parse_args(argv)
    try:
        wanted = parse(args.callers) if args.callers else dict(STANDARD_CALLERS)
    except ValueError as error:
        parser.error(str(error))
    made = {name: secrets.token_urlsafe(32) for name in wanted}
    if args.secret_literals:
        for name, secret in made.items():
            print(f"--from-literal=internal-credential-{name}={credential(name, secret)}")
            print(f"--from-literal=internal-sha256-{name}={secret_sha256(secret)}")
        return 0
    for name, secret in made.items():
        print(name, credential(name, secret))
    print(f"AUTH_INTERNAL_CALLERS={callers_json(made, wanted)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
