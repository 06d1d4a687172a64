"""Device models of the machine: one module a device."""
