#!/usr/bin/env bash
# The stage modules' one path through real ansible-playbook against a simulated mLinux unit: run inside the
# worker (a local connection, what provisioning does); become, another host or async refused in words, no_log
# values masked, and no module payload ever put anywhere.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
workdir=$(mktemp -d)
trap '[ -n "${KEEP_WORKDIR:-}" ] || rm -rf "${workdir}"' EXIT
# shellcheck disable=SC2016  # the inner sh expands SIM_INVENTORY, set by the runner
python -m simulator.harness --workdir "${workdir}/sim" run -- \
    --mlinux 1 --subnet "${SIM_SUBNET:-127.68.0.0/24}" -- \
    sh -c 'ansible-playbook -vvv -i "${SIM_INVENTORY}" -e "work=$1" "$0" > "$1/run.log" 2>&1' \
    "${here}/playbook.yml" "${workdir}" \
    || { grep -E 'ERROR|FAILED|fatal|assert|msg' "${workdir}/run.log" | cut -c1-400 | tail -40; exit 1; }
python "${here}/../../no_secrets.py" "${workdir}/sim/manifest.yml" "${workdir}/run.log"
shipped=$(grep -c 'AnsiballZ_gateway_facts' "${workdir}/run.log" || true)
echo "gateway_facts payloads shipped: ${shipped} (none: it only runs in the worker)"
[ "${shipped}" -eq 0 ]
grep -E '^mlinux-01 +:' "${workdir}/run.log"
