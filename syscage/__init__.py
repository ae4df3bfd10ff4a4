"""syscage: learn least-privilege seccomp profiles for containers with eBPF, then enforce them."""

__version__ = "0.1.0"
