#!/usr/bin/env bash
# ansible-playbook against a simulated fleet (2 AEP, 2 mLinux) and the real sshd
# jumphost, at -vvv; then no password the run used may appear in its output.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
workdir=$(mktemp -d)
trap '[ -n "${KEEP_WORKDIR:-}" ] || rm -rf "${workdir}"' EXIT
# shellcheck disable=SC2016  # the inner sh expands SIM_INVENTORY, set by the runner
python -m simulator.harness --workdir "${workdir}/sim" run -- \
    --aep 2 --mlinux 2 --mlinux-mtcap 1 --jumphost --subnet "${SIM_SUBNET:-127.60.0.0/24}" -- \
    sh -c 'ansible-playbook -vvv -i "${SIM_INVENTORY}" "$0" > "$1" 2>&1' \
    "${here}/playbook.yml" "${workdir}/run.log" || { tail -50 "${workdir}/run.log"; exit 1; }
recap=$(grep -cE '^(jumphost|mlinux-0[12]|aep-0[12]) +: ok=2 +changed=0 +unreachable=0 +failed=0' "${workdir}/run.log")
[ "${recap}" -eq 5 ] || { echo "expected 5 hosts with ok=2 failed=0, got ${recap}"; exit 1; }
python - "${workdir}/sim/manifest.yml" "${workdir}/run.log" <<'PY'
import sys, yaml
manifest = yaml.safe_load(open(sys.argv[1]))
log = open(sys.argv[2], errors="replace").read()
secrets = {manifest["jumphost"]["admin_password"]}
for device in manifest["devices"]:
    for creds in device["credentials"].values():
        secrets.update(v for k, v in creds.items() if "password" in k and v)
leaked = [s for s in secrets if s in log]
assert not leaked, f"{len(leaked)} password(s) appear in the -vvv output"
print(f"simulator_smoke: {len(secrets)} passwords checked, none in {len(log)} bytes of -vvv output")
PY
grep -E '^(jumphost|mlinux-0[12]|aep-0[12]) ' "${workdir}/run.log" | sed 's/^/    /'
