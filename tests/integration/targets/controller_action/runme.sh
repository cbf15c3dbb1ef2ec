#!/usr/bin/env bash
# The stage modules' two paths through real ansible-playbook against a simulated mLinux unit: run inside the
# worker (a local connection, what provisioning does) and shipped as a module (become). Same results, the
# same refusals in the same words, no_log values masked in both; only the shipped runs start a module payload.
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
# the three become runs each put one module payload on the target; the three runs in the worker put none
shipped=$(grep -c 'PUT .*/AnsiballZ_gateway_facts.py' "${workdir}/run.log" || true)
echo "gateway_facts payloads shipped: ${shipped} (3 become runs, 3 runs in the worker)"
[ "${shipped}" -eq 3 ]
grep -E '^mlinux-01 +:' "${workdir}/run.log"
