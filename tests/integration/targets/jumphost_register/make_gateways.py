"""Write an inventory of N stand-in gateways, each with two fresh SSH keys (its host key and a re-flash key).

    python make_gateways.py OUT.yml N
"""

import os
import subprocess
import sys
import tempfile

import yaml


def public_key(folder, name):
    path = os.path.join(folder, name)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", path], check=True)
    with open(path + ".pub") as handle:
        return handle.read().strip()


def main(out, count):
    hosts = {}
    with tempfile.TemporaryDirectory() as folder:
        for number in range(1, count + 1):
            name = "gw-%02d" % number
            hosts[name] = {"jumphost_register_host_key": public_key(folder, name),
                           "reflashed_host_key": public_key(folder, name + "-reflashed"),
                           "ansible_connection": "local",
                           "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
    with open(out, "w") as handle:
        yaml.safe_dump({"gateways": {"hosts": hosts}}, handle, sort_keys=False)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
