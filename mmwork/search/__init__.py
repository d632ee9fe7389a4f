"""Ad-hoc queries over the store and exact (or indexed) nearest neighbours over feature columns."""
