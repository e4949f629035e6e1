"""The sandbox: running an untrusted build in a hermetic, network-less container."""
