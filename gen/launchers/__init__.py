"""What gen's cluster launchers (hydra_plugins/gen_launchers) need from the library."""
