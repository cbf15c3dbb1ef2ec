#!/usr/bin/env bash
# ttn_inventory against a copy of inventory_template/org: 32 gateways written in
# one parallel run, check -> run -> check -> run, an operator's file kept line
# for line, bad input refused with nothing written, and ansible-inventory
# reading the result the way ttn-multitech-cm will.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "${here}/../../../.." && pwd)
workdir=$(mktemp -d)
trap '[ -n "${KEEP_WORKDIR:-}" ] || rm -rf "${workdir}"' EXIT
cp -r "${repo}/inventory_template/org" "${workdir}/org"
# the operator's part: root's keys (ttn_inventory refuses the template's placeholder)
ssh-keygen -q -t ed25519 -N "" -C ops@it -f "${workdir}/ops"
sed -i "s|\"ssh-ed25519 AAAA-replace-with-your-operators-keys ops@example.org\"|\"$(cat "${workdir}/ops.pub")\"|" \
    "${workdir}/org/inventory/group_vars/conduits.yml"
grep -q "ops@it" "${workdir}/org/inventory/group_vars/conduits.yml"
python - "${workdir}/gateways.yml" <<'PY'
import sys
import yaml
hosts = {"ttn-it-00-08-00-00-00-%02x" % n: {"tunnel_port": 20000 + n, "keepalive_port": 40000 + 2 * n}
         for n in range(1, 33)}
inventory = {"all": {"vars": {"ansible_connection": "local",
                              "ansible_python_interpreter": "{{ ansible_playbook_python }}"},
                     "children": {"gateways": {"hosts": hosts}}}}
with open(sys.argv[1], "w") as handle:
    yaml.safe_dump(inventory, handle)
PY
ANSIBLE_FORKS=40 ansible-playbook -i "${workdir}/gateways.yml" -e "org=${workdir}/org" "${here}/playbook.yml" \
    > "${workdir}/run.log" 2>&1 || { grep -E 'ERROR|FAILED|fatal|assert|msg' "${workdir}/run.log" | cut -c1-400 | tail -40; exit 1; }
# every gateway of the parallel run is in hosts once (the make lines come after the accept stage, not here)
test "$(grep -c '^ttn-it-00-08-00-00-00-' "${workdir}/org/inventory/hosts")" -eq 32
grep -E '^ttn-it-00-08-00-00-00-0[12] +:' "${workdir}/run.log"
