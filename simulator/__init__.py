"""A simulated fleet of MultiTech Conduits (AEP and mLinux) and a real sshd jumphost."""
