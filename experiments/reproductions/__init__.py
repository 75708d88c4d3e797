"""Published setups rerun with this library's estimators at this machine's scale: each module reproduces one
and states the ordering it finds beside the paper's.  ``python -m experiments.reproductions NAME``."""
