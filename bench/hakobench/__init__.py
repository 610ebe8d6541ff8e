"""hako's benchmark against runc and crun: see bench/README.md."""
