"""turnout: Ansible-driven blue-green deployments for bare-metal and VM fleets."""

__version__ = "0.1.0"
