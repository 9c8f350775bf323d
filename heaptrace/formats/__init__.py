"""Text formats other tools write and heaptrace reads (folded stacks, DTrace output), shared by
the DTrace backend, the importers and the views; and the imported-contents writer."""
