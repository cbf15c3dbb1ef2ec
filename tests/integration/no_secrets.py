"""Fail when any password of the simulated fleet, or one given, appears in a log.

    python tests/integration/no_secrets.py MANIFEST LOG [EXTRA_SECRET ...]
"""

import sys

import yaml


def main(manifest_path, log_path, extra):
    with open(manifest_path) as handle:
        manifest = yaml.safe_load(handle)
    with open(log_path, errors="replace") as handle:
        log = handle.read()
    secrets = set(extra)
    if manifest.get("jumphost"):
        secrets.add(manifest["jumphost"]["admin_password"])
    for device in manifest["devices"]:
        for creds in device["credentials"].values():
            secrets.update(value for key, value in creds.items() if "password" in key and value)
    leaked = sorted(s for s in secrets if s in log)
    if leaked:
        print("%d password(s) appear in %s" % (len(leaked), log_path))
        return 1
    print("%d passwords checked: none in %d bytes of output" % (len(secrets), len(log)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2], sys.argv[3:]))
