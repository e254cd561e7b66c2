"""Developer tooling: the local control plane built from Go modules, fake KWOK nodes, and their CLI."""
